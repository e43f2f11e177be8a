"""Shared cocotb test-bench pieces for the accelerator top: clock/reset, an AXI4-Lite manager,
AXI-Stream source and sink with seeded back-pressure and stall counting, a non-idle cycle monitor,
and a scoreboard. Drive on the falling edge, sample settled values, commit on the rising edge."""
from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from hw.params import AccelParams
from hw.reference import AccelModel, Desc, Op, cycles

CTRL, STATUS, ERR_INFO, CYCLES, LAST_CYCLES, CMD_COUNT, DESC_LO, DESC_HI = (
    0x004, 0x008, 0x00C, 0x010, 0x014, 0x018, 0x020, 0x024)


def params() -> AccelParams:
    return AccelParams.small()


class Scoreboard:
    def __init__(self, log):
        self.log = log
        self.fails: list[str] = []
        self.checks = 0
        self.cycle_log: list[tuple[str, int, int]] = []

    def eq(self, what: str, got, exp) -> None:
        self.checks += 1
        if got != exp:
            self.fails.append(f"{what}: got {got!r}, expected {exp!r}")
            self.log.error("MISMATCH %s: got %r expected %r", what, got, exp)

    def cycles(self, what: str, got: int, exp: int) -> None:
        self.cycle_log.append((what, got, exp))
        self.eq(f"cycles of {what}", got, exp)

    def finish(self) -> None:
        for what, got, exp in self.cycle_log:
            self.log.info("cycles %-28s T=%d (spec %d)", what, got, exp)
        # the measured trace, for cross-checking the cycle-level simulator (sim/)
        with open("cycles.json", "w") as fh:
            json.dump([{"command": w, "T_rtl": g, "T_spec": e} for w, g, e in self.cycle_log], fh, indent=0)
        assert not self.fails, f"{len(self.fails)} of {self.checks} checks failed: {self.fails[:5]}"
        assert self.checks > 0


class Tb:
    def __init__(self, dut, seed: int | None = None):
        self.dut = dut
        self.p = params()
        self.seed = int(os.environ.get("CLONE_SEED", "1")) if seed is None else seed
        self.rng = random.Random(self.seed)
        self.model = AccelModel(self.p)
        self.sb = Scoreboard(dut._log)
        self.in_gap = 0.0       # probability that the source withholds a beat
        self.out_gap = 0.0      # probability that the sink is not ready
        self.stall_in = 0
        self.stall_out = 0
        self.busy_runs: list[int] = []
        self.out_beats: list[tuple[int, int]] = []

    async def start(self) -> None:
        d = self.dut
        Clock(d.clk, 10, unit="ns").start()
        for sig in (d.axi__awvalid, d.axi__wvalid, d.axi__bready, d.axi__arvalid, d.axi__rready,
                    d.s_axis__valid, d.m_axis__ready, d.axi__awaddr, d.axi__wdata, d.axi__araddr,
                    d.s_axis__payload):
            sig.value = 0
        d.axi__wstrb.value = 0xF
        d.rst.value = 1
        for _ in range(3):
            await FallingEdge(d.clk)
        d.rst.value = 0
        cocotb.start_soon(self._monitor())

    async def _monitor(self) -> None:
        """Counts stream stalls and the length of every non-idle run of the sequencer."""
        d = self.dut
        run = 0
        while True:
            await FallingEdge(d.clk)
            await ReadOnly()
            if int(d.s_axis__ready.value) and not int(d.s_axis__valid.value):
                self.stall_in += 1
            if int(d.m_axis__valid.value) and not int(d.m_axis__ready.value):
                self.stall_out += 1
            if int(d.seq.idle.value):
                if run:
                    self.busy_runs.append(run)
                run = 0
            else:
                run += 1

    async def cycles_wait(self, n: int) -> None:
        for _ in range(n):
            await FallingEdge(self.dut.clk)

    # ------------------------------------------------------------ AXI4-Lite manager
    async def write(self, addr: int, data: int) -> int:
        d = self.dut
        await FallingEdge(d.clk)
        d.axi__awaddr.value = addr
        d.axi__wdata.value = data & 0xFFFFFFFF
        d.axi__awvalid.value = 1
        d.axi__wvalid.value = 1
        while True:
            await ReadOnly()
            done = int(d.axi__awready.value) and int(d.axi__wready.value)
            await FallingEdge(d.clk)
            if done:
                break
        d.axi__awvalid.value = 0
        d.axi__wvalid.value = 0
        d.axi__bready.value = 1
        while True:
            await ReadOnly()
            if int(d.axi__bvalid.value):
                resp = int(d.axi__bresp.value)
                await FallingEdge(d.clk)
                break
            await FallingEdge(d.clk)
        d.axi__bready.value = 0
        return resp

    async def read(self, addr: int, with_resp: bool = False):
        d = self.dut
        await FallingEdge(d.clk)
        d.axi__araddr.value = addr
        d.axi__arvalid.value = 1
        while True:
            await ReadOnly()
            done = int(d.axi__arready.value)
            await FallingEdge(d.clk)
            if done:
                break
        d.axi__arvalid.value = 0
        d.axi__rready.value = 1
        while True:
            await ReadOnly()
            if int(d.axi__rvalid.value):
                data, resp = int(d.axi__rdata.value), int(d.axi__rresp.value)
                await FallingEdge(d.clk)
                break
            await FallingEdge(d.clk)
        d.axi__rready.value = 0
        return (data, resp) if with_resp else data

    # ------------------------------------------------------------ streams
    async def source(self, beats: list[int]) -> None:
        d = self.dut
        i = 0
        while i < len(beats):
            await FallingEdge(d.clk)
            if self.rng.random() < self.in_gap:
                d.s_axis__valid.value = 0
                continue
            d.s_axis__valid.value = 1
            d.s_axis__payload.value = beats[i]
            await ReadOnly()
            if int(d.s_axis__ready.value):
                i += 1
        await FallingEdge(d.clk)
        d.s_axis__valid.value = 0

    async def sink(self, nbeats: int) -> list[tuple[int, int]]:
        d = self.dut
        got: list[tuple[int, int]] = []
        while len(got) < nbeats:
            await FallingEdge(d.clk)
            rdy = self.rng.random() >= self.out_gap
            d.m_axis__ready.value = int(rdy)
            await ReadOnly()
            if rdy and int(d.m_axis__valid.value):
                v = int(d.m_axis__payload.value)
                got.append((v & 0xFFFFFFFF, v >> 32))
        await FallingEdge(d.clk)
        d.m_axis__ready.value = 0
        return got

    # ------------------------------------------------------------ commands
    async def push(self, desc: Desc | int) -> int:
        word = desc.encode() if isinstance(desc, Desc) else desc
        await self.write(DESC_LO, word & 0xFFFFFFFF)
        return await self.write(DESC_HI, word >> 32)

    async def wait_idle(self, limit: int = 200000) -> None:
        for _ in range(limit):
            if not (await self.read(STATUS)) & 1:
                return
        raise AssertionError("accelerator did not return to idle")

    async def run(self, desc: Desc, beats_in: list[int] | None = None, out_beats: int = 0,
                  what: str | None = None, check_model: bool = True) -> tuple[int, list[int]]:
        """Push one descriptor with its stream traffic, wait for idle, score T and the outputs
        against the reference model; returns (T from LAST_CYCLES, output beats)."""
        si0, so0, runs0 = self.stall_in, self.stall_out, len(self.busy_runs)
        vcur0 = self.model.vcur
        src = cocotb.start_soon(self.source(beats_in)) if beats_in else None
        snk = cocotb.start_soon(self.sink(out_beats)) if out_beats else None
        await self.push(desc)
        if src:
            await src
        got = await snk if snk else []
        await self.wait_idle()
        t_hw = await self.read(LAST_CYCLES)
        stall = (self.stall_in - si0) + (self.stall_out - so0)
        name = what or Op(desc.op).name if desc.op <= 10 else f"op{desc.op}"
        if check_model:
            exp_code = self.model.check(desc)
            t_model, beats_model = self.model.execute(desc, beats_in)
            if exp_code:
                t_exp = 1
            elif desc.op in (Op.DVFS_SET, Op.DVFS_POLICY):
                t_exp = t_model
            else:
                t_exp = cycles(self.p, desc, stall=stall)
            self.sb.cycles(name, t_hw, t_exp)
            if len(self.busy_runs) > runs0:
                self.sb.eq(f"non-idle run of {name}", self.busy_runs[-1], t_hw)
            if out_beats:
                self.sb.eq(f"{name} data", [b for b, _ in got], beats_model)
                self.sb.eq(f"{name} last", [l for _, l in got], [0] * (len(got) - 1) + [1])
        return t_hw, [b for b, _ in got]

    async def run_cmd(self, *args, **kw) -> int:
        return (await self.run(*args, **kw))[0]

    async def load(self, buf: int, addr: int, words: list[int]) -> int:
        nb = self.p.beats(buf)
        beats = [(w >> (32 * b)) & 0xFFFFFFFF for w in words for b in range(nb)]
        return await self.run_cmd(Desc(Op.LOAD, f=buf, a=addr, d=len(words)), beats)

    async def store(self, buf: int, addr: int, count: int) -> list[int]:
        nb = self.p.beats(buf)
        t, beats = await self.run(Desc(Op.STORE, f=buf, a=addr, d=count), out_beats=count * nb)
        return [sum(beats[i * nb + b] << (32 * b) for b in range(nb)) for i in range(count)]

    async def check_buffer(self, buf: int, addr: int, count: int, what: str) -> None:
        """STORE a range and compare with the model (the STORE itself is scored in run)."""
        await self.store(buf, addr, count)

    async def expect_error(self, desc: Desc, code: int, what: str) -> None:
        await self.write(CTRL, 1)
        t = await self.run_cmd(desc, what=what)
        st = await self.read(STATUS)
        self.sb.eq(f"{what} ERR bit", (st >> 1) & 1, 1)
        self.sb.eq(f"{what} ERR code", (st >> 4) & 0xF, code)
        info = await self.read(ERR_INFO)
        self.sb.eq(f"{what} ERR opcode", (info >> 4) & 0xF, desc.op & 0xF)
        self.sb.eq(f"{what} T", t, 1)
        await self.write(CTRL, 1)
        self.model.err, self.model.err_code = False, 0
        self.sb.eq(f"{what} cleared", ((await self.read(STATUS)) >> 1) & 1, 0)
