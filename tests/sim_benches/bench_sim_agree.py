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
        if os.environ.get("CLONE_PARAMS") == "asic28":     # the RTL must be built from asic28 too
            from hw.params import AccelParams
            self.p = AccelParams.asic28()

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


@cocotb.test()
async def queue_timing_equals_sim(dut):
    """Descriptors pushed as fast as AXI4-Lite allows while long commands run: the cycle of every
    DECODE (relative to the first DESC_HI handshake), E_QFULL drops and the final counters equal the
    simulator's push(at=handshake cycle) model."""
    tb = LinkedTb(dut, StreamLink.ideal())
    p = tb.p
    await tb.start()
    d = dut
    events: list[tuple[str, int]] = []

    async def monitor():
        t, prev_idle = 0, 1
        while True:
            await FallingEdge(d.clk)
            await ReadOnly()
            if (int(d.axi__awvalid.value) and int(d.axi__wvalid.value) and int(d.axi__awready.value)
                    and int(d.axi__wready.value) and int(d.axi__awaddr.value) == 0x024):
                events.append(("push", t))
            idle = int(d.seq.idle.value)
            if prev_idle and not idle:
                events.append(("decode", t))
            prev_idle = idle
            t += 1

    cocotb.start_soon(monitor())
    rng = tb.rng
    descs = []
    for i in range(3 * p.qdepth):
        if rng.random() < 0.5:
            kt, m = rng.randint(4, 12), rng.randint(2, 4)
            descs.append(Desc(Op.GEMV, f=rng.randint(0, 3), a=0, b=0, c=0, d=kt, e=m))
        else:
            descs.append(rng.choice([Desc(Op.NOP), Desc(Op.ACTIVATE, f=1, a=2), Desc(Op.PREDICT_LEN, a=1),
                                     Desc(Op.GEMV, a=0, b=0, c=0, d=1, e=1), Desc(13)]))
    for desc in descs:
        await tb.push(desc)
    await tb.wait_idle()
    pushes = [t for e, t in events if e == "push"]
    decodes = [t for e, t in events if e == "decode"]
    sim = Accelerator(p)
    t0 = pushes[0]
    sim.now = t0                      # the sequencer is idle from before the first push
    codes = [sim.push(desc, at=t) for desc, t in zip(descs, pushes)]
    sim.drain()
    tb.sb.eq("number of pushes seen", len(pushes), len(descs))
    tb.sb.eq("DECODE cycles", [x - t0 for x in decodes], [r.pop_cycle + 1 - t0 for r in sim.log])
    tb.sb.eq("E_QFULL drops", sum(c != 0 for c in codes) > 0, True)
    for addr in (0x00C, 0x018, 0x014):
        tb.sb.eq(f"reg {addr:#x}", await tb.read(addr), sim.read(addr))
    st = await tb.read(STATUS)
    tb.sb.eq("ERR code", (st >> 4) & 0xF, sim.err_code)
    dut._log.info("pushes at %s, decodes at %s, push codes %s", [x - t0 for x in pushes],
                  [x - t0 for x in decodes], codes)
    tb.sb.finish()
