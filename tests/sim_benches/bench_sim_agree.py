"""cocotb bench: the same seeded random command stream on the RTL and on sim.machine.Accelerator,
with the stream ports driven by sim.link's beat schedule (input beat i valid from cycle
latency + ceil(i/rate) after DECODE; output beat j accepted from cycle 2 + ceil(j/rate)).
Every command's LAST_CYCLES must equal the simulator's T, every output beat must match, and at the
end every buffer word, the eNVM-visible LoRA results, the registers and CYCLES-derived busy runs
must agree. Parameters come from the environment (CLONE_SEED, CLONE_LINK = "num/den:latency")."""
import os
from fractions import Fraction

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly

from hw.reference import Buf, Desc, Op
from sim.link import StreamLink
from sim.machine import Accelerator
from sim.randstream import StreamItem, policy_setup, random_stream
from tb import LAST_CYCLES, STATUS, Tb


def link_from_env() -> StreamLink:
    text = os.environ.get("CLONE_LINK", "1/1:0")
    rate, _, lat = text.partition(":")
    return StreamLink(Fraction(rate), int(lat or 0))


class LinkedTb(Tb):
    def __init__(self, dut, link: StreamLink):
        super().__init__(dut)
        self.link = link

    async def _decode_cycle(self) -> None:
        """Return in the falling edge of the command's DECODE cycle (first non-idle cycle)."""
        d = self.dut
        while True:
            await FallingEdge(d.clk)
            if not int(d.seq.idle.value):
                return

    async def link_source(self, beats: list[int]) -> None:
        d = self.dut
        offer = self.link.offer(len(beats))
        await self._decode_cycle()
        t, i = 0, 0
        while i < len(beats):
            if t > 0:
                await FallingEdge(d.clk)
            ok = offer[i] <= t
            d.s_axis__valid.value = int(ok)
            d.s_axis__payload.value = beats[i]
            await ReadOnly()
            if ok and int(d.s_axis__ready.value):
                i += 1
            t += 1
        await FallingEdge(d.clk)
        d.s_axis__valid.value = 0

    async def link_sink(self, nbeats: int) -> list[int]:
        d = self.dut
        slots = 2 + self.link.sink_slots(nbeats)
        await self._decode_cycle()
        t, got = 0, []
        while len(got) < nbeats:
            if t > 0:
                await FallingEdge(d.clk)
            rdy = slots[len(got)] <= t
            d.m_axis__ready.value = int(rdy)
            await ReadOnly()
            if rdy and int(d.m_axis__valid.value):
                got.append(int(d.m_axis__payload.value) & 0xFFFFFFFF)
            t += 1
        await FallingEdge(d.clk)
        d.m_axis__ready.value = 0
        return got


@cocotb.test()
async def rtl_equals_sim(dut):
    link = link_from_env()
    tb = LinkedTb(dut, link)
    p = tb.p
    seed = tb.seed
    await tb.start()
    sim = Accelerator(p, link=link)
    policy, lenlut = policy_setup(p, seed)
    for i, v in enumerate(policy):
        await tb.write(0x300 + 4 * i, v)
        sim.write(0x300 + 4 * i, v)
    for i, v in enumerate(lenlut):
        await tb.write(0x280 + 4 * i, v)
        sim.write(0x280 + 4 * i, v)
    items = random_stream(p, seed, length=int(os.environ.get("CLONE_STREAM_LEN", "100")), lora_overlap=True)
    # directed: a LORA whose output overwrites a base tile it has yet to read (tile order), then GEMVs
    items += [StreamItem(Desc(Op.LORA, f=1, a=0, b=4, c=5, d=2, e=1)),
              StreamItem(Desc(Op.GEMV, f=3, a=0, b=0, c=2, d=p.wbuf_depth, e=2))]
    for it in items:
        what = f"{Op(it.desc.op).name if it.desc.op <= 10 else 'op%d' % it.desc.op} {it.desc}"
        code = sim.check(it.desc)
        t_sim, out_sim = sim.execute(it.desc, it.beats)
        src = cocotb.start_soon(tb.link_source(it.beats)) if (it.beats and not code) else None
        snk = cocotb.start_soon(tb.link_sink(it.out_beats)) if (it.out_beats and not code) else None
        await tb.push(it.desc)
        if src:
            await src
        got = await snk if snk else []
        await tb.wait_idle()
        t_rtl = await tb.read(LAST_CYCLES)
        tb.sb.cycles(what, t_rtl, t_sim)
        if snk:
            tb.sb.eq(f"{what} output beats", got, out_sim)
        st = await tb.read(STATUS)
        tb.sb.eq(f"ERR after {what}", ((st >> 1) & 1, (st >> 4) & 0xF), (int(sim.err), sim.err_code))
        tb.sb.eq(f"ERR_INFO after {what}", await tb.read(0x00C), sim.read(0x00C))
    # final state through the ideal link
    tb.link = StreamLink.ideal()
    sim.link = sim.out_link = StreamLink.ideal()
    for buf in Buf:
        for a in range(0, p.depth(buf), 8):
            n = min(8, p.depth(buf) - a)
            desc = Desc(Op.STORE, f=buf, a=a, d=n)
            t_sim, out_sim = sim.execute(desc)
            snk = cocotb.start_soon(tb.link_sink(n * p.beats(buf)))
            await tb.push(desc)
            got = await snk
            await tb.wait_idle()
            tb.sb.eq(f"{buf.name}[{a}:{a + n}]", got, out_sim)
            tb.sb.cycles(f"STORE {buf.name}", await tb.read(LAST_CYCLES), t_sim)
    regs = [0x018, 0x028, 0x180, 0x184, 0x200, 0x204, 0x208, 0x210, 0x214]
    regs += [0x100 + 4 * e for e in range(p.ne)] + [0x1C0 + 4 * e for e in range(p.ne)]
    regs += [0x140 + 4 * s for s in range(p.nslot)]
    for addr in regs:
        tb.sb.eq(f"reg {addr:#x}", await tb.read(addr), sim.read(addr))
    dut._log.info("%d commands, %d rejected, link %s", sim.cmd_count, sim.err_count, link)
    tb.sb.finish()
