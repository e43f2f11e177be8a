"""Iterative fixed-point units with data-independent timing: a restoring divider (one quotient
bit per cycle) and a digit-by-digit integer square root (one result bit per cycle)."""
from __future__ import annotations

from amaranth import Module, Signal, Mux
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class IterDiv(wiring.Component):
    """floor(num / den) for num < 2^width after exactly `width` step cycles. `load` captures the
    operands; `q_next` is the quotient after the step of the current cycle."""

    def __init__(self, width: int):
        self.width = width
        super().__init__({"load": In(1), "num": In(width), "den": In(width), "step": In(1),
                          "q": Out(width), "q_next": Out(width)})

    def elaborate(self, platform):
        m = Module()
        w = self.width
        rem = Signal(w + 1)
        num = Signal(w)
        den = Signal(w)
        q = Signal(w)
        trial = Signal(w + 1)
        ge = Signal()
        m.d.comb += [trial.eq((rem << 1) | num[w - 1]), ge.eq(trial >= den),
                     self.q.eq(q), self.q_next.eq(Mux(self.step, (q << 1) | ge, q))]
        with m.If(self.load):
            m.d.sync += [rem.eq(0), num.eq(self.num), den.eq(self.den), q.eq(0)]
        with m.Elif(self.step):
            m.d.sync += [rem.eq(Mux(ge, trial - den, trial)), num.eq(num << 1),
                         q.eq((q << 1) | ge)]
        return m


class IterSqrt(wiring.Component):
    """floor(sqrt(x)) for x < 2^(2*iters) after exactly `iters` step cycles."""

    def __init__(self, iters: int):
        self.iters = iters
        w = 2 * iters
        super().__init__({"load": In(1), "x": In(w), "step": In(1),
                          "res": Out(iters + 1), "res_next": Out(iters + 1)})

    def elaborate(self, platform):
        m = Module()
        w = 2 * self.iters
        num = Signal(w + 1)
        res = Signal(w + 1)
        bit = Signal(w + 1)
        trial = Signal(w + 2)
        ge = Signal()
        m.d.comb += [trial.eq(res + bit), ge.eq(num >= trial), self.res.eq(res)]
        res_n = Mux(ge, (res >> 1) + bit, res >> 1)
        m.d.comb += self.res_next.eq(Mux(self.step, res_n, res))
        with m.If(self.load):
            m.d.sync += [num.eq(self.x), res.eq(0), bit.eq(1 << (w - 2))]
        with m.Elif(self.step):
            m.d.sync += [num.eq(Mux(ge, num - trial, num)), res.eq(res_n), bit.eq(bit >> 2)]
        return m
