"""Pieces for block-level benches on a block's own Verilog: clock/reset and a synchronous-read
memory model (address sampled in cycle t, data driven for cycle t+1), with an optional write port."""
from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, Timer


async def start(dut) -> None:
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0


class MemModel:
    """Serves `<port>__addr` -> `<port>__data` one cycle later; `wport` (addr/data/en) writes."""

    def __init__(self, dut, port: str, words: list[int], wport: str | None = None):
        self.dut, self.words = dut, words
        self.addr = getattr(dut, f"{port}__addr")
        self.data = getattr(dut, f"{port}__data")
        self.w = wport and (getattr(dut, f"{wport}__addr"), getattr(dut, f"{wport}__data"),
                            getattr(dut, f"{wport}__en"))
        self.reads = 0
        cocotb.start_soon(self._run())

    async def _run(self) -> None:
        pending = 0
        while True:
            await FallingEdge(self.dut.clk)
            self.data.value = self.words[pending % len(self.words)]
            await ReadOnly()
            pending = int(self.addr.value)
            if self.w and int(self.w[2].value):
                self.words[int(self.w[0].value)] = int(self.w[1].value)


async def pulse_and_time(dut, limit: int = 100000) -> int:
    """Pulse `start` for one cycle (the sequencer's DECODE cycle) and return L, the number of
    cycles from the next cycle up to and including the one with `done`."""
    await FallingEdge(dut.clk)
    dut.start.value = 1
    await FallingEdge(dut.clk)
    dut.start.value = 0
    for cyc in range(1, limit):
        await ReadOnly()
        if int(dut.done.value):
            await FallingEdge(dut.clk)
            return cyc
        await FallingEdge(dut.clk)
    raise AssertionError("block never signalled done")
