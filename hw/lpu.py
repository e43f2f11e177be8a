"""LoRA Processing Unit: eNVM adapter store with several experts, hot-swappable active slots,
router-written mixing gates, the fixed-point LoRA path and the router itself
(docs/hw-spec.md, sections 3.2, 3.3 and 6)."""
from __future__ import annotations

from amaranth import Module, Signal, Mux, Array, Cat, signed
from amaranth.lib import wiring, stream, data
from amaranth.lib.wiring import In, Out

from hw.axi import regbus_signature
from hw.mac_array import sat32
from hw.params import AccelParams
from hw.router import Router
from hw.sram import Envm, rd_signature, wr_signature

# LPU -> SFU beat: routing decision; SFU -> LPU beat: new DVFS level
ROUTE_BEAT = data.StructLayout({"task": 4, "gate": 16})


def sat16(v):
    return Mux(v > 32767, 32767, Mux(v < -32768, -32768, v))


def rshr(v, s):
    """Round-half-up arithmetic right shift by a signal amount (s = 0 passes v)."""
    return (v + ((1 << s) >> 1)) >> s


class LoraEngine(wiring.Component):
    """Phase A: h = A x per slot and rank row (one eNVM word per cycle), scaled by the gate;
    phase B: per output tile, y += B^T[k] * hs[k] (one eNVM word per cycle), out = base + y."""

    def __init__(self, p: AccelParams):
        self.p = p
        n = p.n
        super().__init__({
            "start": In(1), "done": Out(1), "busy": Out(1),
            "nsl": In(5), "a": In(12), "b": In(12), "c": In(12), "sh_a": In(5), "sh_b": In(5),
            "slots": In(4 * p.nslot), "gates": In(16 * p.ne),
            "envm": Out(rd_signature(p.envm_depth, 8 * n)),
            "abuf": Out(rd_signature(p.abuf_depth, 8 * n)),
            "obuf_r": Out(rd_signature(p.obuf_depth, 32 * n)),
            "obuf_w": Out(wr_signature(p.obuf_depth, 32 * n)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        n, rk, kt, nt = p.n, p.rk, p.kt, p.nt
        nsl = Signal(5)
        a, b, c = Signal(12), Signal(12), Signal(12)
        sh_a, sh_b = Signal(5), Signal(5)
        busy = Signal()
        m.d.comb += self.busy.eq(busy)
        slots = Array(self.slots.word_select(s, 4) for s in range(p.nslot))
        gates = Array(self.gates.word_select(e, 16) for e in range(p.ne))
        s_i = Signal(range(p.nslot + 1))
        k_i = Signal(range(rk + 1))
        t_i = Signal(range(max(kt, nt) + 1))
        j_i = Signal(range(nt + 1))
        cnt = Signal(range(p.nslot * rk * kt + 4))
        ebase = Signal(range(p.envm_depth + 1))
        m.d.comb += ebase.eq(slots[s_i] * p.ew)

        hs = Array(Signal(signed(16), name=f"hs{i}") for i in range(p.nslot * rk))
        # pipeline tags
        v1, v2 = Signal(), Signal()
        s1, s2 = Signal.like(s_i), Signal.like(s_i)
        k1, k2 = Signal.like(k_i), Signal.like(k_i)
        f1, f2, l1, l2 = Signal(), Signal(), Signal(), Signal()

        # phase A datapath
        dot = Signal(signed(32))
        terms = [self.envm.data.word_select(i, 8).as_signed() * self.abuf.data.word_select(i, 8).as_signed()
                 for i in range(n)]
        hacc = Signal(signed(32))
        h_new = Mux(f2, 0, hacc) + dot
        g2 = gates[slots[s2]]
        scaled = Signal(signed(49))
        m.d.comb += scaled.eq(h_new * g2)

        # phase B datapath
        hsel = Signal(signed(16))
        prods = [Signal(signed(24), name=f"prod{i}") for i in range(n)]
        ys = [Signal(signed(32), name=f"y{i}") for i in range(n)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [busy.eq(1), nsl.eq(self.nsl), a.eq(self.a), b.eq(self.b),
                                 c.eq(self.c), sh_a.eq(self.sh_a), sh_b.eq(self.sh_b),
                                 s_i.eq(0), k_i.eq(0), t_i.eq(0), j_i.eq(0), cnt.eq(0)]
                    m.next = "A"
            with m.State("A"):
                na = nsl * (rk * kt)
                issue = cnt < na
                # eNVM address: A rows of a slot are contiguous: k*KT + t
                m.d.comb += [self.envm.addr.eq(ebase + k_i * kt + t_i), self.abuf.addr.eq(a + t_i)]
                m.d.sync += [cnt.eq(cnt + 1), v1.eq(issue), s1.eq(s_i), k1.eq(k_i),
                             f1.eq(t_i == 0), l1.eq(t_i == kt - 1),
                             v2.eq(v1), s2.eq(s1), k2.eq(k1), f2.eq(f1), l2.eq(l1),
                             dot.eq(sum(terms[1:], terms[0]))]
                with m.If(issue):
                    with m.If(t_i == kt - 1):
                        m.d.sync += t_i.eq(0)
                        with m.If(k_i == rk - 1):
                            m.d.sync += [k_i.eq(0), s_i.eq(s_i + 1)]
                        with m.Else():
                            m.d.sync += k_i.eq(k_i + 1)
                    with m.Else():
                        m.d.sync += t_i.eq(t_i + 1)
                with m.If(v2):
                    m.d.sync += hacc.eq(h_new)
                    with m.If(l2):
                        m.d.sync += hs[s2 * rk + k2].eq(sat16(rshr(scaled, sh_a + 15)))
                with m.If(cnt == na + 1):
                    m.d.sync += [cnt.eq(0), s_i.eq(0), k_i.eq(0), t_i.eq(0), v1.eq(0), v2.eq(0)]
                    m.next = "B"
            with m.State("B"):
                nb = nsl * rk
                issue = cnt < nb
                m.d.comb += [self.envm.addr.eq(ebase + rk * kt + k_i * nt + j_i),
                             self.obuf_r.addr.eq(b + j_i)]
                m.d.sync += [cnt.eq(cnt + 1), v1.eq(issue), f1.eq(cnt == 0), v2.eq(v1), f2.eq(f1),
                             hsel.eq(hs[s_i * rk + k_i])]
                for i in range(n):
                    m.d.sync += prods[i].eq(self.envm.data.word_select(i, 8).as_signed() * hsel)
                    with m.If(v2):
                        m.d.sync += ys[i].eq(Mux(f2, 0, ys[i]) + prods[i])
                with m.If(issue):
                    with m.If(k_i == rk - 1):
                        m.d.sync += [k_i.eq(0), s_i.eq(s_i + 1)]
                    with m.Else():
                        m.d.sync += k_i.eq(k_i + 1)
                wr = cnt == nb + 2
                outs = [sat32(self.obuf_r.data.word_select(i, 32).as_signed() + rshr(ys[i], sh_b))
                        for i in range(n)]
                m.d.comb += [self.obuf_w.addr.eq(c + j_i), self.obuf_w.data.eq(Cat(*[o[:32] for o in outs])),
                             self.obuf_w.en.eq(wr)]
                with m.If(wr):
                    m.d.sync += [cnt.eq(0), s_i.eq(0), k_i.eq(0), j_i.eq(j_i + 1)]
                    with m.If(j_i == nt - 1):
                        m.d.sync += busy.eq(0)
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
        return m


class Lpu(wiring.Component):
    """The LPU partition: eNVM store + adapter loader, slots, gates, LoRA engine, router, the
    LPU register page (0x100-0x1FF) and its end of the LPU-SFU channel."""

    def __init__(self, p: AccelParams):
        self.p = p
        n = p.n
        super().__init__({
            "bus": In(regbus_signature()),
            "adp": In(stream.Signature(32)),
            "to_sfu": Out(stream.Signature(ROUTE_BEAT)),
            "from_sfu": In(stream.Signature(4)),
            # command interface from the sequencer
            "lora_start": In(1), "route_start": In(1), "adp_start": In(1), "act_we": In(1),
            "abort": In(1),
            "done": Out(1),
            "f": In(4), "a": In(12), "b": In(12), "c": In(12), "d": In(12), "e": In(8),
            "abuf": Out(rd_signature(p.abuf_depth, 8 * n)),
            "emb": Out(rd_signature(p.emb_depth, 8 * n)),
            "obuf_r": Out(rd_signature(p.obuf_depth, 32 * n)),
            "obuf_w": Out(wr_signature(p.obuf_depth, 32 * n)),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        m.submodules.envm = envm = Envm(p.envm_depth, 8 * p.n, p.t_w)
        m.submodules.lora = lora = LoraEngine(p)
        m.submodules.router = rt = Router(p)

        slots = [Signal(4, name=f"slot{s}", init=s % p.ne) for s in range(p.nslot)]
        gates = [Signal(16, name=f"gate{e}") for e in range(p.ne)]
        route_info = Signal(32)
        level_seen = Signal(4)

        # --- command fan-out
        m.d.comb += [
            lora.start.eq(self.lora_start), lora.nsl.eq(self.f), lora.a.eq(self.a),
            lora.b.eq(self.b), lora.c.eq(self.c), lora.sh_a.eq(self.d[:5]), lora.sh_b.eq(self.e[:5]),
            lora.slots.eq(Cat(*slots)), lora.gates.eq(Cat(*gates)),
            rt.start.eq(self.route_start), rt.a.eq(self.a), rt.beta.eq(self.e),
        ]
        with m.If(self.act_we):
            for s in range(p.nslot):
                with m.If(self.f == s):
                    m.d.sync += slots[s].eq(self.a)

        # --- shared ports: the router owns ABUF while it runs, else the LoRA engine
        m.d.comb += [self.abuf.addr.eq(Mux(rt.busy, rt.abuf.addr, lora.abuf.addr)),
                     rt.abuf.data.eq(self.abuf.data), lora.abuf.data.eq(self.abuf.data),
                     self.emb.addr.eq(rt.emb.addr), rt.emb.data.eq(self.emb.data)]
        wiring.connect(m, wiring.flipped(self.obuf_r), lora.obuf_r)
        wiring.connect(m, wiring.flipped(self.obuf_w), lora.obuf_w)
        m.d.comb += [envm.rd.addr.eq(lora.envm.addr), lora.envm.data.eq(envm.rd.data)]

        # --- adapter loader: B_A beats per word, then T_W cycles of eNVM programming
        wi = Signal(range(p.envm_depth + 1))
        wend = Signal(range(p.envm_depth + 1))
        bi = Signal(range(p.b_a + 1))
        sr = Signal(32 * p.b_a)
        wait = Signal(range(p.t_w + 1))
        adp_done = Signal()
        word = Cat(sr[32:], self.adp.payload)
        with m.FSM(name="adp"):
            with m.State("IDLE"):
                with m.If(self.adp_start):
                    m.d.sync += [wi.eq(self.a * p.ew), wend.eq(self.a * p.ew + p.ew - 1), bi.eq(0)]
                    m.next = "RX"
            with m.State("RX"):
                m.d.comb += self.adp.ready.eq(~self.abort)
                with m.If(self.abort):
                    m.d.comb += adp_done.eq(1)
                    m.next = "IDLE"
                with m.Elif(self.adp.valid):
                    m.d.sync += [sr.eq(word), bi.eq(bi + 1)]
                    with m.If(bi == p.b_a - 1):
                        m.d.comb += [envm.wr.en.eq(1), envm.wr.addr.eq(wi), envm.wr.data.eq(word)]
                        m.d.sync += [bi.eq(0), wait.eq(0)]
                        m.next = "WR"
            with m.State("WR"):
                m.d.sync += wait.eq(wait + 1)
                with m.If(wait == p.t_w - 1):
                    m.d.sync += wi.eq(wi + 1)
                    with m.If((wi == wend) | self.abort):   # an abort lets the word finish
                        m.d.comb += adp_done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "RX"

        m.d.comb += self.done.eq(lora.done | rt.done | adp_done)

        # --- router results: gates, route info, LPU -> SFU beat
        with m.If(rt.gate_we):
            for e in range(p.ne):
                with m.If(rt.gate_idx == e):
                    m.d.sync += gates[e].eq(rt.gate_val)
        with m.If(rt.done):
            m.d.sync += route_info.eq(Cat(rt.argmax, Signal(16 - len(rt.argmax)), rt.gmax))
        m.d.comb += [self.to_sfu.valid.eq(rt.done), self.to_sfu.payload.task.eq(rt.argmax),
                     self.to_sfu.payload.gate.eq(rt.gmax), self.from_sfu.ready.eq(1)]
        with m.If(self.from_sfu.valid):
            m.d.sync += level_seen.eq(self.from_sfu.payload)

        # --- LPU register page
        bus = self.bus
        with m.If(bus.we):
            for e in range(p.ne):
                with m.If(bus.waddr == 0x100 + 4 * e):
                    m.d.sync += gates[e].eq(bus.wdata[:16])
        with m.Switch(bus.raddr):
            for e in range(p.ne):
                with m.Case(0x100 + 4 * e):
                    m.d.comb += bus.rdata.eq(gates[e])
                with m.Case(0x1C0 + 4 * e):
                    m.d.comb += bus.rdata.eq(rt.cos.word_select(e, 16))
            for s in range(p.nslot):
                with m.Case(0x140 + 4 * s):
                    m.d.comb += bus.rdata.eq(slots[s])
            with m.Case(0x180):
                m.d.comb += bus.rdata.eq(route_info)
            with m.Case(0x184):
                m.d.comb += bus.rdata.eq(level_seen)
        return m
