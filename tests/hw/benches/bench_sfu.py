"""DVFS SFU: level changes up and down (LDO first when the frequency rises, ADPLL first when it
falls), slew/settle/lock durations of the status flags sampled every cycle, the policy LUT, the
V/f table rewritten over AXI4-Lite, the length predictor indexed by the routed task, and the
SFU -> LPU level channel."""
import cocotb
from cocotb.triggers import FallingEdge, ReadOnly

from hw.reference import Desc, Op, policy_index
from tb import Tb


class FlagTrace:
    """Per-cycle samples of the SFU settled/locked flags."""

    def __init__(self, tb):
        self.tb = tb
        self.samples: list[tuple[int, int]] = []
        self.on = False
        cocotb.start_soon(self._run())

    async def _run(self):
        d = self.tb.dut
        while True:
            await FallingEdge(d.clk)
            await ReadOnly()
            if self.on:
                self.samples.append((int(d.sfu.settled.value), int(d.sfu.locked.value)))


def low_runs(samples, idx):
    """(first index, length) of the low run of flag idx."""
    lows = [i for i, s in enumerate(samples) if s[idx] == 0]
    return (lows[0], len(lows)) if lows else (None, 0)


async def dvfs(tb, trace, desc, what):
    p, m = tb.p, tb.model
    lvl = desc.a if desc.op == Op.DVFS_SET else m.policy[policy_index(p, desc.a, desc.b, desc.f & 1)]
    vt, ft = m.vf[lvl]
    v0, f0 = m.vcur, m.fcur
    trace.samples.clear()
    trace.on = True
    await tb.run(desc, what=what)
    trace.on = False
    s_first, s_len = low_runs(trace.samples, 0)
    l_first, l_len = low_runs(trace.samples, 1)
    tb.sb.eq(f"{what} settled low cycles", s_len, abs(vt - v0) * p.t_slew + p.t_settle)
    tb.sb.eq(f"{what} locked low cycles", l_len, p.t_lock)
    tb.sb.eq(f"{what} order (LDO first iff f rises)", s_first < l_first, ft > f0)
    tb.sb.eq(f"{what} LEVEL", await tb.read(0x200), m.level)
    tb.sb.eq(f"{what} VCUR", await tb.read(0x204), m.vcur)
    tb.sb.eq(f"{what} FCUR", await tb.read(0x208), m.fcur)
    tb.sb.eq(f"{what} FLAGS", await tb.read(0x20C), 3)
    tb.sb.eq(f"{what} LEVEL_SEEN (LPU)", await tb.read(0x184), m.level_seen)
    st = await tb.read(0x008)
    tb.sb.eq(f"{what} STATUS flags", (st >> 17) & 3, 3)


@cocotb.test()
async def dvfs_and_tables(dut):
    tb = Tb(dut)
    p, m = tb.p, tb.model
    await tb.start()
    trace = FlagTrace(tb)
    for l in range(p.nl):
        tb.sb.eq(f"VF[{l}] reset", await tb.read(0x240 + 4 * l), m.vf[l][0] | m.vf[l][1] << 8)
    for lvl in (p.nl - 1, 1, 1, 0, 2):
        await dvfs(tb, trace, Desc(Op.DVFS_SET, a=lvl), f"DVFS_SET {lvl}")
    # rewrite the V/f table: a level with a lower voltage but a higher frequency than now
    await tb.write(0x240 + 4 * 1, 0x30 | 0x28 << 8)
    m.vf[1] = (0x30, 0x28)
    await dvfs(tb, trace, Desc(Op.DVFS_SET, a=1), "DVFS_SET 1 (rewritten)")
    # policy LUT
    for i in range(p.npol):
        v = tb.rng.randint(0, p.nl - 1)
        await tb.write(0x300 + 4 * i, v)
        m.policy[i] = v
    for _ in range(4):
        load, slack, phase = tb.rng.randint(0, 3), tb.rng.randint(0, 3), tb.rng.randint(0, 1)
        await dvfs(tb, trace, Desc(Op.DVFS_POLICY, f=phase, a=load, b=slack),
                   f"DVFS_POLICY {load},{slack},{phase}")
    for i in range(p.npol):
        tb.sb.eq(f"POLICY[{i}]", await tb.read(0x300 + 4 * i), m.policy[i])
    # length predictor (task 0 after reset: no ROUTE ran)
    for i in range(p.nlen):
        v = tb.rng.randint(0, 65535)
        await tb.write(0x280 + 4 * i, v)
        m.lenlut[i] = v
    for b in range(p.npb):
        await tb.run(Desc(Op.PREDICT_LEN, a=b), what=f"PREDICT_LEN {b}")
        tb.sb.eq(f"LEN_PRED {b}", await tb.read(0x210), m.len_pred)
    tb.sb.finish()
