"""On-chip memories: single-read/single-write SRAM buffers with a one-cycle synchronous read, and
the eNVM adapter store (same read, but each write keeps it busy for T_W cycles)."""
from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out


def _aw(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


def rd_signature(depth: int, width: int) -> wiring.Signature:
    """Read port from the reader's side: address out, data back one cycle later."""
    return wiring.Signature({"addr": Out(_aw(depth)), "data": In(width)})


def wr_signature(depth: int, width: int) -> wiring.Signature:
    return wiring.Signature({"addr": Out(_aw(depth)), "data": Out(width), "en": Out(1)})


class Sram(wiring.Component):
    """SRAM buffer: `rd` (synchronous, 1 cycle) and `wr` ports; a read of the address being
    written returns the old word."""

    def __init__(self, depth: int, width: int):
        self.depth, self.width = depth, width
        super().__init__({"rd": In(rd_signature(depth, width)), "wr": In(wr_signature(depth, width))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=self.width, depth=self.depth, init=[])
        rp = mem.read_port()
        wp = mem.write_port()
        m.d.comb += [rp.addr.eq(self.rd.addr), self.rd.data.eq(rp.data),
                     wp.addr.eq(self.wr.addr), wp.data.eq(self.wr.data), wp.en.eq(self.wr.en)]
        return m


class Envm(wiring.Component):
    """eNVM adapter store model: fast reads like an SRAM, writes are accepted only when idle and
    then hold `busy` for t_w cycles (the cell programming time); no refresh, no leakage state."""

    def __init__(self, depth: int, width: int, t_w: int):
        self.depth, self.width, self.t_w = depth, width, t_w
        super().__init__({"rd": In(rd_signature(depth, width)), "wr": In(wr_signature(depth, width)),
                          "busy": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=self.width, depth=self.depth, init=[])
        rp = mem.read_port()
        wp = mem.write_port()
        left = Signal(range(self.t_w + 1))
        m.d.comb += [rp.addr.eq(self.rd.addr), self.rd.data.eq(rp.data), self.busy.eq(left != 0),
                     wp.addr.eq(self.wr.addr), wp.data.eq(self.wr.data),
                     wp.en.eq(self.wr.en & (left == 0))]
        with m.If(self.wr.en & (left == 0)):
            m.d.sync += left.eq(self.t_w)
        with m.Elif(left != 0):
            m.d.sync += left.eq(left - 1)
        return m
