"""Interconnect and sequencer: register map through the AXI splitter (ID, PARAMS, DECERR outside
the partitions, undefined offsets read 0), the descriptor queue (status count, E_QFULL, back-to-
back commands every T + 1 cycles), the cycle counters, and every error case of the spec (each
sets ERR and ERR_CODE, takes one cycle and leaves the accelerator idle and usable)."""
import cocotb

from hw.reference import Buf, Desc, Err, ID_VALUE, Op, cycles
from tb import Tb, CMD_COUNT, CYCLES, STATUS


@cocotb.test()
async def registers_and_queue(dut):
    tb = Tb(dut)
    p = tb.p
    await tb.start()
    tb.sb.eq("ID", await tb.read(0x000), ID_VALUE)
    tb.sb.eq("PARAMS", await tb.read(0x028),
             p.n | (p.ne - 1) << 8 | (p.rk - 1) << 12 | (p.nslot - 1) << 16 | (p.nl - 1) << 20)
    for addr in (0x400, 0x7FC, 0xFFC):
        tb.sb.eq(f"write DECERR {addr:#x}", await tb.write(addr, 1), 3)
        tb.sb.eq(f"read DECERR {addr:#x}", await tb.read(addr, with_resp=True), (0, 3))
    for addr in (0x0FC, 0x1FC, 0x3FC, 0x030):
        tb.sb.eq(f"undefined {addr:#x}", await tb.read(addr, with_resp=True), (0, 0))
    c0 = await tb.read(CYCLES)
    c1 = await tb.read(CYCLES)
    tb.sb.eq("CYCLES advances", 0 < c1 - c0 < 20, True)
    # queue: GEMVs with long tiles pushed back to back; the first runs while the rest queue up
    gemv = Desc(Op.GEMV, a=0, b=0, c=0, d=30, e=2)
    t_g = cycles(p, gemv)
    n0 = await tb.read(CMD_COUNT)
    runs0 = len(tb.busy_runs)
    for _ in range(p.qdepth + 1):
        await tb.push(gemv)
    st = await tb.read(STATUS)
    tb.sb.eq("queue count while busy", (st >> 8) & 0xFF, p.qdepth)
    tb.sb.eq("queue full flag", (st >> 16) & 1, 1)
    await tb.push(gemv)                       # overflows
    st = await tb.read(STATUS)
    tb.sb.eq("E_QFULL", ((st >> 1) & 1, (st >> 4) & 0xF), (1, Err.QFULL))
    await tb.wait_idle()
    done = await tb.read(CMD_COUNT) - n0
    tb.sb.eq("commands executed (one dropped)", done, p.qdepth + 1)
    tb.sb.eq("back-to-back busy runs", tb.busy_runs[runs0:runs0 + p.qdepth + 1], [t_g] * (p.qdepth + 1))
    await tb.write(0x004, 1)
    tb.sb.eq("ERR cleared", ((await tb.read(STATUS)) >> 1) & 1, 0)
    # period of back-to-back commands: pushes were faster than execution after the first
    tb.sb.finish()


@cocotb.test()
async def error_cases(dut):
    tb = Tb(dut)
    p = tb.p
    await tb.start()
    cases = [
        (Desc(11), Err.OPCODE, "opcode 11"), (Desc(15, a=3), Err.OPCODE, "opcode 15"),
        (Desc(Op.LOAD, f=4, a=0, d=1), Err.BUF, "LOAD buffer 4"),
        (Desc(Op.LOAD, f=0, a=0, d=0), Err.ARG, "LOAD zero words"),
        (Desc(Op.LOAD, f=0, a=p.abuf_depth - 1, d=2), Err.ADDR, "LOAD past ABUF"),
        (Desc(Op.STORE, f=1, a=p.wbuf_depth, d=1), Err.ADDR, "STORE past WBUF"),
        (Desc(Op.STORE, f=3, a=0, d=p.emb_depth + 1), Err.ADDR, "STORE past EMB"),
        (Desc(Op.GEMV, a=0, b=0, c=0, d=0, e=1), Err.ARG, "GEMV kt=0"),
        (Desc(Op.GEMV, a=p.abuf_depth - 3, b=0, c=0, d=2, e=2), Err.ADDR, "GEMV x range"),
        (Desc(Op.GEMV, a=0, b=p.wbuf_depth - 1, c=0, d=2, e=1), Err.ADDR, "GEMV w range"),
        (Desc(Op.GEMV, f=1, a=0, b=p.wbuf_depth - 1, c=0, d=3, e=1), Err.ADDR, "GEMV int4 w range"),
        (Desc(Op.GEMV, a=0, b=0, c=p.obuf_depth - 1, d=1, e=2), Err.ADDR, "GEMV o range"),
        (Desc(Op.LORA, f=0, a=0, b=0, c=0), Err.ARG, "LORA n=0"),
        (Desc(Op.LORA, f=p.nslot + 1, a=0, b=0, c=0), Err.ARG, "LORA n>NSLOT"),
        (Desc(Op.LORA, f=1, a=0, b=0, c=p.obuf_depth - 1), Err.ADDR, "LORA out range"),
        (Desc(Op.ROUTE, a=p.abuf_depth - 1), Err.ADDR, "ROUTE q range"),
        (Desc(Op.ACTIVATE, f=0, a=p.ne), Err.ADAPTER, "ACTIVATE expert NE"),
        (Desc(Op.ACTIVATE, f=p.nslot, a=0), Err.ARG, "ACTIVATE slot NSLOT"),
        (Desc(Op.LOAD_ADAPTER, a=p.ne + 3), Err.ADAPTER, "LOAD_ADAPTER expert"),
        (Desc(Op.DVFS_SET, a=p.nl), Err.LEVEL, "DVFS level NL"),
        (Desc(Op.DVFS_POLICY, a=1 << p.lb), Err.ARG, "DVFS_POLICY load"),
        (Desc(Op.PREDICT_LEN, a=p.npb), Err.ARG, "PREDICT_LEN bucket"),
    ]
    for desc, code, what in cases:
        tb.sb.eq(f"model agrees on {what}", tb.model.check(desc), code)
        await tb.expect_error(desc, code, what)
    # a policy entry beyond the table
    await tb.write(0x300 + 4 * 5, p.nl + 2)
    tb.model.policy[5] = p.nl + 2
    await tb.expect_error(Desc(Op.DVFS_POLICY, f=0, a=1, b=1), Err.LEVEL, "DVFS_POLICY entry >= NL")
    # still alive: a good command after all that
    await tb.run(Desc(Op.NOP), what="NOP after errors")
    await tb.load(Buf.ABUF, 0, [0x01020304])
    got = await tb.store(Buf.ABUF, 0, 1)
    tb.sb.eq("usable after errors", got, [0x01020304])
    tb.sb.finish()


@cocotb.test()
async def abort_stream_commands(dut):
    """CTRL bit1 ends a LOAD, STORE or LOAD_ADAPTER that waits on its stream with E_ABORT."""
    tb = Tb(dut)
    p, m = tb.p, tb.model
    await tb.start()
    cases = [(Desc(Op.LOAD, f=Buf.WBUF, a=0, d=3), p.b_w + 1, 0, "LOAD starved"),
             (Desc(Op.LOAD_ADAPTER, a=1), 2 * p.b_a + 1, 0, "LOAD_ADAPTER starved"),
             (Desc(Op.STORE, f=Buf.OBUF, a=0, d=2), 0, 1, "STORE never accepted")]
    for desc, nbeats, _, what in cases:
        if nbeats:
            cocotb.start_soon(tb.source([tb.rng.getrandbits(32) for _ in range(nbeats)]))
        await tb.push(desc)
        await tb.cycles_wait(3 * p.t_w + 20)
        st = await tb.read(STATUS)
        tb.sb.eq(f"{what}: still busy before abort", st & 1, 1)
        await tb.write(0x004, 2)
        await tb.wait_idle(limit=200)
        st = await tb.read(STATUS)
        tb.sb.eq(f"{what}: E_ABORT", ((st >> 1) & 1, (st >> 4) & 0xF), (1, Err.ABORT))
        tb.sb.eq(f"{what}: ERR_INFO opcode", ((await tb.read(0x00C)) >> 4) & 0xF, desc.op)
        await tb.write(0x004, 1)
    # an abort while idle or during a bounded command is ignored
    await tb.write(0x004, 2)
    await tb.run(Desc(Op.GEMV, a=0, b=0, c=0, d=2, e=1), what="GEMV after aborts")
    tb.sb.eq("no error from a stale abort", ((await tb.read(STATUS)) >> 1) & 1, 0)
    # everything still works: full adapter reload, load/store round trip
    words = [tb.rng.getrandbits(32 * p.b_a) for _ in range(p.ew)]
    beats = [(w >> (32 * b)) & 0xFFFFFFFF for w in words for b in range(p.b_a)]
    await tb.run(Desc(Op.LOAD_ADAPTER, a=1), beats, what="LOAD_ADAPTER after abort")
    await tb.load(Buf.OBUF, 0, [tb.rng.getrandbits(32 * p.n) for _ in range(2)])
    await tb.store(Buf.OBUF, 0, 2)
    tb.sb.finish()
