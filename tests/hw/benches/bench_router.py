"""Router: cosine similarity and LUT softmax against the reference for random and corner
embeddings (identical, opposite, zero vector, zero query), several temperatures; gates, COS,
ROUTE_INFO and the routing decision delivered to the SFU over the LPU-SFU channel."""
import cocotb

from hw.reference import Buf, Desc, Op, pack, sext
from tb import Tb


async def check_route(tb, what):
    p = tb.p
    m = tb.model
    for e in range(p.ne):
        tb.sb.eq(f"{what} GATE[{e}]", await tb.read(0x100 + 4 * e), m.gates[e])
        tb.sb.eq(f"{what} COS[{e}]", sext(await tb.read(0x1C0 + 4 * e), 16), m.cos[e])
    info = await tb.read(0x180)
    tb.sb.eq(f"{what} ROUTE_INFO", (info & 0xF, info >> 16), m.route_info)
    tb.sb.eq(f"{what} SFU TASK", await tb.read(0x214), m.task)
    tb.sb.eq(f"{what} gate sum <= 1.0", sum(m.gates) <= 32768, True)


@cocotb.test()
async def routing(dut):
    tb = Tb(dut)
    p = tb.p
    n, et = p.n, p.et
    await tb.start()
    rnd = lambda: [tb.rng.randint(-128, 127) for _ in range(n * et)]
    q = rnd()
    embs = [rnd() for _ in range(p.ne)]
    embs[1] = list(q)                       # cos = 1
    embs[2] = [-v if v > -128 else 127 for v in q]   # cos ~ -1
    embs[3] = [0] * (n * et)                # zero norm -> cos 0
    words = [pack(e[t * n:(t + 1) * n], 8) for e in embs for t in range(et)]
    await tb.load(Buf.EMB, 0, words)
    await tb.load(Buf.ABUF, 7, [pack(q[t * n:(t + 1) * n], 8) for t in range(et)])
    for beta in (16, 255, 1, 0, 64):
        await tb.run(Desc(Op.ROUTE, a=7, e=beta), what=f"ROUTE beta={beta}")
        await check_route(tb, f"beta={beta}")
    # random embeddings, random queries
    for i in range(3):
        embs = [rnd() for _ in range(p.ne)]
        await tb.load(Buf.EMB, 0, [pack(e[t * n:(t + 1) * n], 8) for e in embs for t in range(et)])
        await tb.load(Buf.ABUF, 10 + i, [pack(rnd()[:n], 8) for _ in range(et)])
        beta = tb.rng.randint(0, 255)
        await tb.run(Desc(Op.ROUTE, a=10 + i, e=beta), what=f"ROUTE random {i}")
        await check_route(tb, f"random {i}")
    # extreme: all -128 query and embeddings (maximal dot and norms), zero query
    await tb.load(Buf.EMB, 0, [pack([-128] * n, 8)] * (p.ne * et))
    await tb.load(Buf.ABUF, 40, [pack([-128] * n, 8)] * et + [0] * et)
    await tb.run(Desc(Op.ROUTE, a=40, e=200), what="ROUTE extreme")
    await check_route(tb, "extreme")
    await tb.run(Desc(Op.ROUTE, a=40 + et, e=200), what="ROUTE zero query")
    await check_route(tb, "zero query")
    tb.sb.finish()
