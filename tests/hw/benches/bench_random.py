"""Seeded random command streams against the whole-accelerator reference model: every command
kind (valid and invalid field values), random data, random stream back-pressure; every command's
cycles are scored, and at the end every buffer word and architectural register is compared."""
import cocotb

from hw.reference import Buf, Desc, Op, adapter_words, sext, word_to_beats
from tb import Tb


def random_desc(tb) -> tuple[Desc, list[int] | None]:
    p, r = tb.p, tb.rng
    op = r.choice(list(Op) + [Op.GEMV, Op.LORA, Op.LOAD, Op.STORE, 12])
    bad = r.random() < 0.12
    if op == Op.LOAD or op == Op.STORE:
        buf = r.randint(0, 4 if bad else 3)
        depth = p.depth(min(buf, 3))
        d = r.randint(0 if bad else 1, 3)
        a = r.randint(0, depth - (0 if bad else d))
        desc = Desc(op, f=buf, a=a, d=d)
        if op == Op.LOAD and tb.model.check(desc) == 0:
            nb = p.beats(buf)
            return desc, [r.getrandbits(32) for _ in range(d * nb)]
        return desc, None
    if op == Op.GEMV:
        kt, m = r.randint(0 if bad else 1, 5), r.randint(1, 3)
        f = r.randint(0, 3)
        return Desc(op, f=f, a=r.randint(0, p.abuf_depth - (0 if bad else m * max(kt, 1))),
                    b=r.randint(0, p.wbuf_depth - (0 if bad else max(kt, 1))),
                    c=r.randint(0, p.obuf_depth - (0 if bad else m)), d=kt, e=m), None
    if op == Op.LORA:
        return Desc(op, f=r.randint(0 if bad else 1, p.nslot + (1 if bad else 0)),
                    a=r.randint(0, p.abuf_depth - p.kt), b=r.randint(0, p.obuf_depth - p.nt),
                    c=r.randint(0, p.obuf_depth - (0 if bad else p.nt)),
                    d=r.randint(0, 12), e=r.randint(0, 8)), None
    if op == Op.ROUTE:
        return Desc(op, a=r.randint(0, p.abuf_depth - (0 if bad else p.et)), e=r.randint(0, 255)), None
    if op == Op.ACTIVATE:
        return Desc(op, f=r.randint(0, p.nslot - (0 if bad else 1)),
                    a=r.randint(0, p.ne - (0 if bad else 1))), None
    if op == Op.LOAD_ADAPTER:
        e = r.randint(0, p.ne - (0 if bad else 1))
        desc = Desc(op, a=e)
        if e < p.ne:
            a_m = [[r.randint(-128, 127) for _ in range(p.kt * p.n)] for _ in range(p.rk)]
            b_m = [[r.randint(-128, 127) for _ in range(p.rk)] for _ in range(p.nt * p.n)]
            return desc, [b for w in adapter_words(p, a_m, b_m) for b in word_to_beats(w, p.b_a)]
        return desc, None
    if op == Op.DVFS_SET:
        return Desc(op, a=r.randint(0, p.nl - (0 if bad else 1))), None
    if op == Op.DVFS_POLICY:
        return Desc(op, f=r.randint(0, 1), a=r.randint(0, (1 << p.lb) - (0 if bad else 1)),
                    b=r.randint(0, (1 << p.sb) - 1)), None
    if op == Op.PREDICT_LEN:
        return Desc(op, a=r.randint(0, p.npb - (0 if bad else 1))), None
    return Desc(op if isinstance(op, int) else int(op), a=r.randint(0, 4095)), None


@cocotb.test()
async def random_commands(dut):
    tb = Tb(dut)
    p, m = tb.p, tb.model
    await tb.start()
    tb.in_gap, tb.out_gap = 0.2, 0.2
    # programme the SFU tables (some policy entries out of range on purpose)
    for i in range(p.npol):
        v = tb.rng.randint(0, p.nl)
        await tb.write(0x300 + 4 * i, v)
        m.policy[i] = v
    for i in range(p.nlen):
        v = tb.rng.randint(0, 999)
        await tb.write(0x280 + 4 * i, v)
        m.lenlut[i] = v
    for _ in range(90):
        desc, beats = random_desc(tb)
        name = Op(desc.op).name if desc.op <= 10 else f"op{desc.op}"
        what = f"{name} {desc}"
        if desc.op == Op.STORE and m.check(desc) == 0:
            await tb.run(desc, out_beats=desc.d * p.beats(desc.f), what=what)
        else:
            await tb.run(desc, beats, what=what)
        st = await tb.read(0x008)
        tb.sb.eq(f"ERR/ERR_CODE after {what}", ((st >> 1) & 1, (st >> 4) & 0xF), (int(m.err), m.err_code))
        if tb.rng.random() < 0.1:
            await tb.write(0x004, 1)
            m.err, m.err_code = False, 0
    tb.in_gap = tb.out_gap = 0.0
    for buf in Buf:
        for a in range(0, p.depth(buf), 8):
            await tb.store(buf, a, min(8, p.depth(buf) - a))
    for e in range(p.ne):
        tb.sb.eq(f"GATE[{e}]", await tb.read(0x100 + 4 * e), m.gates[e])
        tb.sb.eq(f"COS[{e}]", sext(await tb.read(0x1C0 + 4 * e), 16), m.cos[e])
    for s in range(p.nslot):
        tb.sb.eq(f"SLOT[{s}]", await tb.read(0x140 + 4 * s), m.slots[s])
    for addr, val in ((0x200, m.level), (0x204, m.vcur), (0x208, m.fcur), (0x210, m.len_pred),
                      (0x214, m.task), (0x184, m.level_seen)):
        tb.sb.eq(f"reg {addr:#x}", await tb.read(addr), val)
    kinds = {}
    for w, _, _ in tb.sb.cycle_log:
        kinds[w.split(" ")[0]] = kinds.get(w.split(" ")[0], 0) + 1
    dut._log.info("commands exercised: %s", kinds)
    tb.sb.finish()
