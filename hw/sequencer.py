"""Command sequencer: descriptor queue, decode with error checks, the stream movers of LOAD/STORE,
start/done hand-off to the GEMV engine, LPU and SFU, the cycle counters and the control page
(docs/hw-spec.md, sections 4-6)."""
from __future__ import annotations

from amaranth import Module, Signal, Mux, Cat, Const
from amaranth.lib import wiring, stream
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hw.axi import regbus_signature, OUT_BEAT
from hw.params import AccelParams
from hw.reference import Op, Err, ID_VALUE
from hw.sram import rd_signature, wr_signature

OWN_SEQ, OWN_GEMV, OWN_LPU = 0, 1, 2


class Sequencer(wiring.Component):
    def __init__(self, p: AccelParams):
        self.p = p
        n = p.n
        bufs = {}
        for name, depth, width in (("abuf", p.abuf_depth, 8 * n), ("wbuf", p.wbuf_depth, 8 * n * n),
                                   ("obuf", p.obuf_depth, 32 * n), ("emb", p.emb_depth, 8 * n)):
            bufs[f"{name}_r"] = Out(rd_signature(depth, width))
            bufs[f"{name}_w"] = Out(wr_signature(depth, width))
        super().__init__({
            "bus": In(regbus_signature()),
            "s_axis": In(stream.Signature(32)),
            "m_axis": Out(stream.Signature(OUT_BEAT)),
            "adp": Out(stream.Signature(32)),
            **bufs,
            "owner": Out(2),
            "f": Out(4), "a": Out(12), "b": Out(12), "c": Out(12), "d": Out(12), "e": Out(8),
            "gemv_start": Out(1), "lora_start": Out(1), "route_start": Out(1),
            "adp_start": Out(1), "act_we": Out(1), "sfu_start": Out(1), "use_policy": Out(1),
            "pred": Out(1), "abort": Out(1),
            "gemv_done": In(1), "lpu_done": In(1), "sfu_done": In(1),
            "pol_level": In(8), "settled": In(1), "locked": In(1),
        })

    def check(self, m: Module, op, f, a, b, c, d, e) -> Signal:
        """Error code of the descriptor in DECODE (spec section 5 order)."""
        p = self.p
        code = Signal(4)
        depth = Mux(f == 0, p.abuf_depth, Mux(f == 1, p.wbuf_depth,
                                                 Mux(f == 2, p.obuf_depth, p.emb_depth)))
        int4 = f[0]
        wt = Mux(int4, (d + 1) >> 1, d)
        with m.Switch(op):
            with m.Case(Op.LOAD, Op.STORE):
                with m.If(f > 3):
                    m.d.comb += code.eq(Err.BUF)
                with m.Elif(d == 0):
                    m.d.comb += code.eq(Err.ARG)
                with m.Elif(a + d > depth):
                    m.d.comb += code.eq(Err.ADDR)
            with m.Case(Op.GEMV):
                with m.If((d == 0) | (e == 0)):
                    m.d.comb += code.eq(Err.ARG)
                with m.Elif((a + e * d > p.abuf_depth) | (b + wt > p.wbuf_depth)
                            | (c + e > p.obuf_depth)):
                    m.d.comb += code.eq(Err.ADDR)
            with m.Case(Op.LORA):
                with m.If((f == 0) | (f > p.nslot)):
                    m.d.comb += code.eq(Err.ARG)
                with m.Elif((a + p.kt > p.abuf_depth) | (b + p.nt > p.obuf_depth)
                            | (c + p.nt > p.obuf_depth)):
                    m.d.comb += code.eq(Err.ADDR)
            with m.Case(Op.ROUTE):
                with m.If(a + p.et > p.abuf_depth):
                    m.d.comb += code.eq(Err.ADDR)
            with m.Case(Op.ACTIVATE):
                with m.If(f >= p.nslot):
                    m.d.comb += code.eq(Err.ARG)
                with m.Elif(a >= p.ne):
                    m.d.comb += code.eq(Err.ADAPTER)
            with m.Case(Op.LOAD_ADAPTER):
                with m.If(a >= p.ne):
                    m.d.comb += code.eq(Err.ADAPTER)
            with m.Case(Op.DVFS_SET):
                with m.If(a >= p.nl):
                    m.d.comb += code.eq(Err.LEVEL)
            with m.Case(Op.DVFS_POLICY):
                with m.If((a >= (1 << p.lb)) | (b >= (1 << p.sb))):
                    m.d.comb += code.eq(Err.ARG)
                with m.Elif(self.pol_level >= p.nl):
                    m.d.comb += code.eq(Err.LEVEL)
            with m.Case(Op.PREDICT_LEN):
                with m.If(a >= p.npb):
                    m.d.comb += code.eq(Err.ARG)
            with m.Case(Op.NOP):
                pass
            with m.Default():
                m.d.comb += code.eq(Err.OPCODE)
        return code

    def elaborate(self, platform):
        m = Module()
        p = self.p
        m.submodules.fifo = fifo = SyncFIFO(width=64, depth=p.qdepth)
        desc = Signal(64)
        op, f = desc[0:4], desc[4:8]
        a, b, c, d, e = desc[8:20], desc[20:32], desc[32:44], desc[44:56], desc[56:64]
        m.d.comb += [self.f.eq(f), self.a.eq(a), self.b.eq(b), self.c.eq(c), self.d.eq(d),
                     self.e.eq(e), self.use_policy.eq(op == Op.DVFS_POLICY)]

        cycles = Signal(32)
        m.d.sync += cycles.eq(cycles + 1)
        tcount = Signal(32)
        last_cycles = Signal(32)
        cmd_count = Signal(32)
        err = Signal()
        err_code = Signal(4)
        err_op = Signal(4)
        err_count = Signal(16)
        owner = Signal(2)
        m.d.comb += self.owner.eq(owner)
        desc_lo = Signal(32)
        idle = Signal()

        def finish():
            m.d.sync += [last_cycles.eq(tcount), cmd_count.eq(cmd_count + 1), owner.eq(OWN_SEQ)]
            m.next = "IDLE"

        abort_req = Signal()      # CTRL bit1, honoured by the stream-waiting states

        def finish_aborted():
            m.d.sync += [err.eq(1), err_code.eq(Err.ABORT), err_op.eq(op), err_count.eq(err_count + 1)]
            finish()

        # stream movers
        buf = Signal(2)
        ptr = Signal(12)
        endp = Signal(12)
        bi = Signal(range(p.b_w + 1))
        nbeats = Mux(buf == 1, p.b_w, Mux(buf == 2, p.b_o, p.b_a))
        maxw = 32 * p.b_w
        sr = Signal(maxw)
        lanes = [Mux(bi == i, self.s_axis.payload, sr.word_select(i, 32)) for i in range(p.b_w)]
        word = Cat(*lanes)
        rports = [self.abuf_r, self.wbuf_r, self.obuf_r, self.emb_r]
        wports = [self.abuf_w, self.wbuf_w, self.obuf_w, self.emb_w]
        for rp in rports:
            m.d.comb += rp.addr.eq(ptr)
        for wp in wports:
            m.d.comb += [wp.addr.eq(ptr), wp.data.eq(word)]
        rdata = Signal(maxw)
        with m.Switch(buf):
            for i, rp in enumerate(rports):
                with m.Case(i):
                    m.d.comb += rdata.eq(rp.data)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += idle.eq(1)
                m.d.sync += abort_req.eq(0)
                with m.If(fifo.r_rdy):
                    m.d.comb += fifo.r_en.eq(1)
                    m.d.sync += [desc.eq(fifo.r_data), tcount.eq(1)]
                    m.next = "DECODE"
            with m.State("DECODE"):
                m.d.sync += tcount.eq(tcount + 1)
                code = self.check(m, op, f, a, b, c, d, e)
                with m.If(code != 0):
                    m.d.sync += [err.eq(1), err_code.eq(code), err_op.eq(op),
                                 err_count.eq(err_count + 1)]
                    finish()
                with m.Else():
                    m.d.sync += [buf.eq(f[:2]), ptr.eq(a), endp.eq(a + d - 1), bi.eq(0), sr.eq(0)]
                    with m.Switch(op):
                        with m.Case(Op.LOAD):
                            m.next = "LOAD"
                        with m.Case(Op.STORE):
                            m.next = "STORE_RD"
                        with m.Case(Op.GEMV):
                            m.d.comb += self.gemv_start.eq(1)
                            m.d.sync += owner.eq(OWN_GEMV)
                            m.next = "WAIT"
                        with m.Case(Op.LORA):
                            m.d.comb += self.lora_start.eq(1)
                            m.d.sync += owner.eq(OWN_LPU)
                            m.next = "WAIT"
                        with m.Case(Op.ROUTE):
                            m.d.comb += self.route_start.eq(1)
                            m.d.sync += owner.eq(OWN_LPU)
                            m.next = "WAIT"
                        with m.Case(Op.LOAD_ADAPTER):
                            m.d.comb += self.adp_start.eq(1)
                            m.next = "ADP"
                        with m.Case(Op.DVFS_SET, Op.DVFS_POLICY):
                            m.d.comb += self.sfu_start.eq(1)
                            m.next = "WAIT"
                        with m.Case(Op.ACTIVATE):
                            m.d.comb += self.act_we.eq(1)
                            finish()
                        with m.Case(Op.PREDICT_LEN):
                            m.d.comb += self.pred.eq(1)
                            finish()
                        with m.Default():
                            finish()
            with m.State("WAIT"):
                m.d.sync += tcount.eq(tcount + 1)
                with m.If(self.gemv_done | self.lpu_done | self.sfu_done):
                    finish()
            with m.State("ADP"):
                m.d.sync += tcount.eq(tcount + 1)
                m.d.comb += [self.adp.payload.eq(self.s_axis.payload), self.abort.eq(abort_req),
                             self.adp.valid.eq(self.s_axis.valid), self.s_axis.ready.eq(self.adp.ready)]
                with m.If(self.lpu_done):
                    with m.If(abort_req):
                        finish_aborted()
                    with m.Else():
                        finish()
            with m.State("LOAD"):
                m.d.sync += tcount.eq(tcount + 1)
                m.d.comb += self.s_axis.ready.eq(~abort_req)
                with m.If(abort_req):
                    finish_aborted()
                with m.Elif(self.s_axis.valid):
                    m.d.sync += [sr.word_select(bi, 32).eq(self.s_axis.payload), bi.eq(bi + 1)]
                    with m.If(bi == nbeats - 1):
                        with m.Switch(buf):
                            for i, wp in enumerate(wports):
                                with m.Case(i):
                                    m.d.comb += wp.en.eq(1)
                        m.d.sync += [bi.eq(0), ptr.eq(ptr + 1)]
                        with m.If(ptr == endp):
                            finish()
            with m.State("STORE_RD"):
                m.d.sync += tcount.eq(tcount + 1)
                with m.If(abort_req):
                    finish_aborted()
                with m.Else():
                    m.next = "STORE_TX"
            with m.State("STORE_TX"):
                m.d.sync += tcount.eq(tcount + 1)
                lastbeat = bi == nbeats - 1
                with m.If(abort_req):
                    finish_aborted()
                m.d.comb += [self.m_axis.valid.eq(~abort_req),
                             self.m_axis.payload.data.eq(rdata.word_select(bi, 32)),
                             self.m_axis.payload.last.eq(lastbeat & (ptr == endp))]
                with m.If(self.m_axis.ready & ~abort_req):
                    m.d.sync += bi.eq(bi + 1)
                    with m.If(lastbeat):
                        m.d.sync += [bi.eq(0), ptr.eq(ptr + 1)]
                        with m.If(ptr == endp):
                            finish()
                        with m.Else():
                            m.next = "STORE_RD"

        # control page 0x000-0x0FF
        bus = self.bus
        push = bus.we & (bus.waddr == 0x024)
        m.d.comb += [fifo.w_data.eq(Cat(desc_lo, bus.wdata)), fifo.w_en.eq(push & fifo.w_rdy)]
        with m.If(bus.we & (bus.waddr == 0x020)):
            m.d.sync += desc_lo.eq(bus.wdata)
        with m.If(push & ~fifo.w_rdy):
            m.d.sync += [err.eq(1), err_code.eq(Err.QFULL), err_op.eq(desc_lo[0:4]),
                         err_count.eq(err_count + 1)]
        with m.If(bus.we & (bus.waddr == 0x004) & bus.wdata[0]):
            m.d.sync += [err.eq(0), err_code.eq(0)]
        with m.If(bus.we & (bus.waddr == 0x004) & bus.wdata[1] & ~idle):
            m.d.sync += abort_req.eq(1)
        params = Const(p.n | (p.ne - 1) << 8 | (p.rk - 1) << 12 | (p.nslot - 1) << 16
                       | (p.nl - 1) << 20, 32)
        lvl8 = Signal(8)
        m.d.comb += lvl8.eq(fifo.level)
        status = Cat(~idle | fifo.r_rdy, err, Const(0, 2), err_code, lvl8, ~fifo.w_rdy,
                     self.settled, self.locked)
        with m.Switch(bus.raddr):
            for addr, val in ((0x000, Const(ID_VALUE, 32)), (0x008, status),
                              (0x00C, Cat(err_code, err_op, Const(0, 8), err_count)),
                              (0x010, cycles), (0x014, last_cycles), (0x018, cmd_count),
                              (0x028, params)):
                with m.Case(addr):
                    m.d.comb += bus.rdata.eq(val)
        return m
