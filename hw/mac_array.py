"""N x N dot-product MAC array and the GEMV/GEMM engine that feeds it from the SRAM buffers
(docs/hw-spec.md, sections 3.1 and 6). One K tile (N activations x N*N weights) per cycle,
a registered partial-sum stage and a saturating INT32 accumulator stage: fixed latency 2."""
from __future__ import annotations

from amaranth import Module, Signal, Mux, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.params import AccelParams
from hw.sram import rd_signature, wr_signature

INT32_MAX = (1 << 31) - 1
INT32_MIN = -(1 << 31)


def sat32(v):
    return Mux(v > INT32_MAX, INT32_MAX, Mux(v < INT32_MIN, INT32_MIN, v))


class MacArray(wiring.Component):
    """Datapath only. Inputs sampled in cycle t (in_valid) update `acc` at the end of cycle t+1;
    `first` makes that tile start from `init` (sampled with the tile) instead of the running
    accumulator."""

    def __init__(self, n: int):
        self.n = n
        super().__init__({
            "in_valid": In(1), "first": In(1), "int4": In(1), "half": In(1),
            "x": In(8 * n), "w": In(8 * n * n), "init": In(32 * n), "acc": Out(32 * n),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.n
        psw = 16 + (n - 1).bit_length() + 1
        psums = [Signal(signed(psw), name=f"psum{r}") for r in range(n)]
        v1 = Signal()
        first1 = Signal()
        init1 = Signal(32 * n)
        m.d.sync += [v1.eq(self.in_valid), first1.eq(self.first)]
        with m.If(self.in_valid & self.first):
            m.d.sync += init1.eq(self.init)
        for r in range(n):
            terms = []
            for c in range(n):
                xv = self.x.word_select(c, 8).as_signed()
                w8 = self.w.word_select(r * n + c, 8).as_signed()
                w4 = Mux(self.half, self.w.word_select(n * n + r * n + c, 4),
                         self.w.word_select(r * n + c, 4)).as_signed()
                terms.append(xv * Mux(self.int4, w4, w8))
            total = terms[0]
            for t in terms[1:]:
                total = total + t
            m.d.sync += psums[r].eq(total)
        accs = [Signal(signed(32), name=f"acc{r}") for r in range(n)]
        for r in range(n):
            base = Mux(first1, init1.word_select(r, 32).as_signed(), accs[r])
            with m.If(v1):
                m.d.sync += accs[r].eq(sat32(base + psums[r]))
            m.d.comb += self.acc.word_select(r, 32).eq(accs[r])
        return m


class GemvEngine(wiring.Component):
    """Tile-loop controller around MacArray: per token c = 0..kt+2 (reads for c < kt, OBUF write
    at c = kt+2); tokens back to back; `done` in the last write cycle."""

    def __init__(self, p: AccelParams):
        self.p = p
        n = p.n
        super().__init__({
            "start": In(1), "done": Out(1), "busy": Out(1),
            "int4": In(1), "accf": In(1), "a": In(12), "b": In(12), "c": In(12),
            "kt": In(12), "m": In(8),
            "abuf": Out(rd_signature(p.abuf_depth, 8 * n)),
            "wbuf": Out(rd_signature(p.wbuf_depth, 8 * n * n)),
            "obuf_r": Out(rd_signature(p.obuf_depth, 32 * n)),
            "obuf_w": Out(wr_signature(p.obuf_depth, 32 * n)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = arr = MacArray(self.p.n)
        int4, accf = Signal(), Signal()
        a, b, o = Signal(12), Signal(12), Signal(12)
        kt = Signal(12)
        mm = Signal(8)
        xbase = Signal(16)
        cnt = Signal(13)
        tok = Signal(8)
        busy = Signal()
        m.d.comb += self.busy.eq(busy)
        with m.If(self.start):
            m.d.sync += [busy.eq(1), int4.eq(self.int4), accf.eq(self.accf), a.eq(self.a),
                         b.eq(self.b), o.eq(self.c), kt.eq(self.kt), mm.eq(self.m),
                         xbase.eq(self.a), cnt.eq(0), tok.eq(0)]
        issue = busy & (cnt < kt)
        half1 = Signal()
        m.d.sync += half1.eq(cnt[0])
        m.d.comb += [
            self.abuf.addr.eq(xbase + cnt),
            self.wbuf.addr.eq(b + Mux(int4, cnt >> 1, cnt)),
            self.obuf_r.addr.eq(o + tok),
            arr.x.eq(self.abuf.data), arr.w.eq(self.wbuf.data), arr.int4.eq(int4),
            arr.half.eq(half1), arr.init.eq(Mux(accf, self.obuf_r.data, 0)),
        ]
        issue1 = Signal()
        first1 = Signal()
        m.d.sync += [issue1.eq(issue), first1.eq(issue & (cnt == 0))]
        m.d.comb += [arr.in_valid.eq(issue1), arr.first.eq(first1)]
        last_c = busy & (cnt == kt + 2)
        m.d.comb += [self.obuf_w.addr.eq(o + tok), self.obuf_w.data.eq(arr.acc),
                     self.obuf_w.en.eq(last_c)]
        with m.If(busy):
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(last_c):
                m.d.sync += [cnt.eq(0), tok.eq(tok + 1), xbase.eq(xbase + kt)]
                with m.If(tok == mm - 1):
                    m.d.sync += busy.eq(0)
                    m.d.comb += self.done.eq(1)
        return m
