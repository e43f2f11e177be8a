"""MoE router of the LPU: cosine similarity of the request embedding against the stored expert
embeddings and a LUT softmax, all in fixed point with data-independent timing
(docs/hw-spec.md, sections 3.3 and 6)."""
from __future__ import annotations

from amaranth import Module, Signal, Mux, Array, Const, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.arith import IterDiv, IterSqrt
from hw.params import AccelParams
from hw.reference import exp_lut
from hw.sram import rd_signature


class Router(wiring.Component):
    def __init__(self, p: AccelParams):
        self.p = p
        super().__init__({
            "start": In(1), "done": Out(1), "busy": Out(1), "a": In(12), "beta": In(8),
            "abuf": Out(rd_signature(p.abuf_depth, 8 * p.n)),
            "emb": Out(rd_signature(p.emb_depth, 8 * p.n)),
            "gate_we": Out(1), "gate_idx": Out(range(p.ne)), "gate_val": Out(16),
            "cos": Out(16 * p.ne), "argmax": Out(range(p.ne)), "gmax": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        n, ne, et = p.n, p.ne, p.et
        m.submodules.div = div = IterDiv(p.dw)
        m.submodules.sqrt = sq = IterSqrt(p.sq)
        a = Signal(12)
        beta = Signal(8)
        cnt = Signal(range(max(ne * et + 2, p.dw, p.sq, ne) + 1))
        ei = Signal(range(ne + 1))          # expert index of the current step
        ti = Signal(range(et + 1))
        busy = Signal()
        m.d.comb += self.busy.eq(busy)

        # ---- dot phase datapath: issue (e, t), data next cycle, sums registered, accumulate
        m.d.comb += [self.emb.addr.eq(cnt), self.abuf.addr.eq(a + ti)]
        dqk = Signal(signed(32))
        dkk = Signal(32)
        dqq = Signal(32)
        tag_e1, tag_e2 = Signal(range(ne)), Signal(range(ne))
        tl1, tl2, tf1, tf2, v1, v2 = Signal(), Signal(), Signal(), Signal(), Signal(), Signal()
        qk_terms, kk_terms, qq_terms = [], [], []
        for c in range(n):
            qv = self.abuf.data.word_select(c, 8).as_signed()
            kv = self.emb.data.word_select(c, 8).as_signed()
            qk_terms.append(qv * kv)
            kk_terms.append(kv * kv)
            qq_terms.append(qv * qv)
        m.d.sync += [dqk.eq(sum(qk_terms[1:], qk_terms[0])), dkk.eq(sum(kk_terms[1:], kk_terms[0])),
                     dqq.eq(sum(qq_terms[1:], qq_terms[0]))]
        dots = Array(Signal(signed(32), name=f"dot{e}") for e in range(ne))
        nk2s = Array(Signal(32, name=f"nk2_{e}") for e in range(ne))
        acc_qk = Signal(signed(32))
        acc_kk = Signal(32)
        nq2 = Signal(32)
        new_qk = Mux(tf2, 0, acc_qk) + dqk
        new_kk = Mux(tf2, 0, acc_kk) + dkk
        with m.If(v2):
            m.d.sync += [acc_qk.eq(new_qk), acc_kk.eq(new_kk)]
            with m.If(tag_e2 == 0):
                m.d.sync += nq2.eq(Mux(tf2, 0, nq2) + dqq)
            with m.If(tl2):
                m.d.sync += [dots[tag_e2].eq(new_qk), nk2s[tag_e2].eq(new_kk)]

        # ---- per-expert results
        nq = Signal(p.sq + 1)
        den = Signal(p.dw)
        coss = Array(Signal(signed(16), name=f"cos{e}") for e in range(ne))
        zs = Array(Signal(signed(25), name=f"z{e}") for e in range(ne))
        zmax = Signal(signed(25))
        arg = Signal(range(ne))
        exs = Array(Signal(17, name=f"ex{e}") for e in range(ne))
        ssum = Signal(p.dw)
        gates = Array(Signal(16, name=f"g{e}") for e in range(ne))
        for e in range(ne):
            m.d.comb += self.cos.word_select(e, 16).eq(coss[e])
        m.d.comb += [self.argmax.eq(arg),
                     self.gmax.eq(Mux(self.gate_we & (arg == ei), div.q, gates[arg]))]
        lut = Array(Const(v, 17) for v in exp_lut(p))

        dot_cur = dots[ei]
        absdot = Mux(dot_cur < 0, -dot_cur, dot_cur)

        def load_sqrt(x):
            m.d.comb += [sq.load.eq(1), sq.x.eq(x)]

        def load_div(num, dn):
            m.d.comb += [div.load.eq(1), div.num.eq(num), div.den.eq(dn)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [busy.eq(1), a.eq(self.a), beta.eq(self.beta), cnt.eq(0),
                                 ei.eq(0), ti.eq(0)]
                    m.next = "DOT"
            with m.State("DOT"):
                issue = cnt < ne * et
                m.d.sync += [v1.eq(issue), tag_e1.eq(ei), tf1.eq(ti == 0), tl1.eq(ti == et - 1),
                             v2.eq(v1), tag_e2.eq(tag_e1), tf2.eq(tf1), tl2.eq(tl1),
                             cnt.eq(cnt + 1)]
                with m.If(issue):
                    with m.If(ti == et - 1):
                        m.d.sync += [ti.eq(0), ei.eq(ei + 1)]
                    with m.Else():
                        m.d.sync += ti.eq(ti + 1)
                with m.If(cnt == ne * et + 1):
                    m.d.sync += [cnt.eq(0), ei.eq(0)]
                    load_sqrt(nq2)
                    m.next = "SQQ"
            with m.State("SQQ"):
                m.d.comb += sq.step.eq(1)
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == p.sq - 1):
                    m.d.sync += [cnt.eq(0), nq.eq(sq.res_next)]
                    load_sqrt(nk2s[0])
                    m.next = "SQK"
            with m.State("SQK"):
                m.d.comb += sq.step.eq(1)
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == p.sq - 1):
                    m.d.sync += [cnt.eq(0), den.eq(nq * sq.res_next)]
                    load_div(absdot << 15, nq * sq.res_next)
                    m.next = "DIVC"
            with m.State("DIVC"):
                m.d.comb += div.step.eq(1)
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == p.dw - 1):
                    m.d.sync += cnt.eq(0)
                    m.next = "COS"
            with m.State("COS"):
                qv = div.q
                mag = Mux(qv > 32767, 32767, qv)
                neg = Mux(qv > 32768, -32768, -qv)
                cosv = Signal(signed(17))
                m.d.comb += cosv.eq(Mux(den == 0, 0, Mux(dot_cur < 0, neg, mag)))
                zv = Signal(signed(25))
                m.d.comb += zv.eq(cosv * beta)
                m.d.sync += [coss[ei].eq(cosv), zs[ei].eq(zv)]
                with m.If((ei == 0) | (zv > zmax)):
                    m.d.sync += [zmax.eq(zv), arg.eq(ei)]
                with m.If(ei == ne - 1):
                    m.d.sync += [ei.eq(0), ssum.eq(0)]
                    m.next = "EXP"
                with m.Else():
                    m.d.sync += ei.eq(ei + 1)
                    load_sqrt(nk2s[ei + 1])
                    m.next = "SQK"
            with m.State("EXP"):
                dd = Signal(25)
                m.d.comb += dd.eq(zmax - zs[ei])
                idx = Signal(range(p.lut_n))
                sh = dd >> p.lut_shift
                m.d.comb += idx.eq(Mux(sh > p.lut_n - 1, p.lut_n - 1, sh))
                exv = lut[idx]
                m.d.sync += [exs[ei].eq(exv), ssum.eq(ssum + exv)]
                with m.If(ei == ne - 1):
                    m.d.sync += [ei.eq(0), ssum.eq(ssum + exv)]
                    ex0 = exv if ne == 1 else exs[0]
                    load_div(ex0 << 15, ssum + exv)
                    m.next = "DIVG"
                with m.Else():
                    m.d.sync += ei.eq(ei + 1)
            with m.State("DIVG"):
                m.d.comb += div.step.eq(1)
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == p.dw - 1):
                    m.d.sync += cnt.eq(0)
                    m.next = "GW"
            with m.State("GW"):
                m.d.comb += [self.gate_we.eq(1), self.gate_idx.eq(ei), self.gate_val.eq(div.q)]
                m.d.sync += gates[ei].eq(div.q)
                with m.If(ei == ne - 1):
                    m.d.sync += [ei.eq(0), busy.eq(0)]
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += ei.eq(ei + 1)
                    load_div(exs[ei + 1] << 15, ssum)
                    m.next = "DIVG"
        return m
