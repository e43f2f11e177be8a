"""Block-level benches of the router and the LoRA engine on their own Verilog, with memory models
standing in for the buffers: busy time L against the spec (T = 1 + L) and results against the
reference functions, for seeded random and corner-case data."""
import os
import random

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly

from blocktb import MemModel, pulse_and_time, start
from hw.params import AccelParams
from hw.reference import Desc, Op, cycles, lora_path, pack, route, sext, unpack

P = AccelParams.small()


def rng():
    return random.Random(int(os.environ.get("CLONE_SEED", "1")))


@cocotb.test()
async def router_block(dut):
    p, r = P, rng()
    n, et = p.n, p.et
    await start(dut)
    abuf = [0] * p.abuf_depth
    emb = [0] * p.emb_depth
    MemModel(dut, "abuf", abuf)
    MemModel(dut, "emb", emb)
    gates_seen = {}

    async def gate_monitor():
        while True:
            await FallingEdge(dut.clk)
            await ReadOnly()
            if int(dut.gate_we.value):
                gates_seen[int(dut.gate_idx.value)] = int(dut.gate_val.value)
    cocotb.start_soon(gate_monitor())
    cases = []
    for i in range(6):
        q = [r.randint(-128, 127) for _ in range(n * et)]
        embs = [[r.randint(-128, 127) for _ in range(n * et)] for _ in range(p.ne)]
        if i == 1:
            embs[0], embs[1] = list(q), [0] * (n * et)
        if i == 2:
            q = [0] * (n * et)
        if i == 3:
            q, embs = [-128] * (n * et), [[-128] * (n * et) for _ in range(p.ne)]
        cases.append((q, embs, r.choice([0, 1, 16, 96, 255])))
    for q, embs, beta in cases:
        a = r.randint(0, p.abuf_depth - et)
        for t in range(et):
            abuf[a + t] = pack(q[t * n:(t + 1) * n], 8)
        for e in range(p.ne):
            for t in range(et):
                emb[e * et + t] = pack(embs[e][t * n:(t + 1) * n], 8)
        dut.a.value = a
        dut.beta.value = beta
        gates_seen.clear()
        L = await pulse_and_time(dut)
        ref = route(p, q, embs, beta)
        assert L == cycles(p, Desc(Op.ROUTE)) - 1, (L, cycles(p, Desc(Op.ROUTE)))
        assert [gates_seen[e] for e in range(p.ne)] == ref.gates
        assert [sext(v, 16) for v in unpack(int(dut.cos.value), 16, p.ne, signed=False)] == ref.cos
        assert int(dut.argmax.value) == ref.argmax
        assert int(dut.gmax.value) == ref.gates[ref.argmax]


@cocotb.test()
async def lora_engine_block(dut):
    p, r = P, rng()
    n = p.n
    await start(dut)
    envm = [r.getrandbits(8 * n) for _ in range(p.envm_depth)]
    abuf = [r.getrandbits(8 * n) for _ in range(p.abuf_depth)]
    obuf = [pack([r.randint(-(1 << 31), (1 << 31) - 1) for _ in range(n)], 32) for _ in range(p.obuf_depth)]
    MemModel(dut, "envm", envm)
    MemModel(dut, "abuf", abuf)
    MemModel(dut, "obuf_r", obuf, wport="obuf_w")
    from hw.reference import adapter_from_words
    for it in range(6):
        slots = [r.randint(0, p.ne - 1) for _ in range(p.nslot)]
        gates = [r.choice([0, 32768, r.randint(0, 32768)]) for _ in range(p.ne)]
        nsl = r.randint(1, p.nslot)
        a = r.randint(0, p.abuf_depth - p.kt)
        b = r.randint(0, p.obuf_depth - p.nt)
        c = b if it % 2 else r.randint(0, p.obuf_depth - p.nt)
        sh_a, sh_b = r.randint(0, 20), r.randint(0, 8)
        x = sum((unpack(abuf[a + t], 8, n) for t in range(p.kt)), [])
        base_words = [obuf[b + j] for j in range(p.nt)]
        experts = [adapter_from_words(p, envm[e * p.ew:(e + 1) * p.ew]) for e in slots[:nsl]]
        exp = lora_path(p, x, sum((unpack(w, 32, n) for w in base_words), []), experts,
                        [gates[e] for e in slots[:nsl]], sh_a, sh_b)
        for name, val in (("nsl", nsl), ("a", a), ("b", b), ("c", c), ("sh_a", sh_a), ("sh_b", sh_b),
                          ("slots", pack(slots, 4)), ("gates", pack(gates, 16))):
            getattr(dut, name).value = val
        L = await pulse_and_time(dut)
        assert L == cycles(p, Desc(Op.LORA, f=nsl)) - 1
        await FallingEdge(dut.clk)
        got = sum((unpack(obuf[c + j], 32, n) for j in range(p.nt)), [])
        if c == b or c + p.nt <= b or b + p.nt <= c:   # no partial overlap: plain reference applies
            assert got == exp, (it, got, exp)


@cocotb.test()
async def gemv_engine_block(dut):
    from hw.reference import mac_gemv
    p, r = P, rng()
    n = p.n
    await start(dut)
    abuf = [r.getrandbits(8 * n) for _ in range(p.abuf_depth)]
    wbuf = [r.getrandbits(8 * n * n) for _ in range(p.wbuf_depth)]
    obuf = [pack([r.choice([(1 << 31) - 7, -(1 << 31) + 7, r.randint(-999, 999)]) for _ in range(n)], 32)
            for _ in range(p.obuf_depth)]
    MemModel(dut, "abuf", abuf)
    MemModel(dut, "wbuf", wbuf)
    MemModel(dut, "obuf_r", obuf, wport="obuf_w")
    for it in range(10):
        int4, accf = r.randint(0, 1), r.randint(0, 1)
        kt, m = r.randint(1, 6), r.randint(1, 3)
        a = r.randint(0, p.abuf_depth - kt * m)
        b = r.randint(0, p.wbuf_depth - kt)
        o = r.randint(0, p.obuf_depth - m)
        exp = []
        for i in range(m):
            xs = [unpack(abuf[a + i * kt + t], 8, n) for t in range(kt)]
            init = unpack(obuf[o + i], 32, n) if accf else None
            exp.append(mac_gemv(p, xs, wbuf[b:b + kt], bool(int4), init))
        for name, val in (("int4", int4), ("accf", accf), ("a", a), ("b", b), ("c", o), ("kt", kt), ("m", m)):
            getattr(dut, name).value = val
        L = await pulse_and_time(dut)
        assert L == cycles(p, Desc(Op.GEMV, d=kt, e=m)) - 1
        await FallingEdge(dut.clk)
        assert [unpack(obuf[o + i], 32, n) for i in range(m)] == exp, it


@cocotb.test()
async def sfu_block(dut):
    from hw.reference import dvfs_busy, vf_reset
    p, r = P, rng()
    await start(dut)
    for sig in ("start", "use_policy", "pred", "bus__we", "from_lpu__valid"):
        getattr(dut, sig).value = 0
    vf = vf_reset(p)
    vcur, fcur = vf[0]

    async def bus_write(addr, val):
        await FallingEdge(dut.clk)
        dut.bus__waddr.value, dut.bus__wdata.value, dut.bus__we.value = addr, val, 1
        await FallingEdge(dut.clk)
        dut.bus__we.value = 0

    policy = [r.randint(0, p.nl - 1) for _ in range(p.npol)]
    for i, v in enumerate(policy):
        await bus_write(0x300 + 4 * i, v)
    for it in range(8):
        use_pol = it % 2
        lvl = r.randint(0, p.nl - 1)
        load, slack, phase = r.randint(0, 3), r.randint(0, 3), r.randint(0, 1)
        if use_pol:
            lvl = policy[phase << (p.lb + p.sb) | slack << p.lb | load]
        dut.use_policy.value, dut.level.value = use_pol, lvl
        dut.load.value, dut.slack.value, dut.phase.value = load, slack, phase
        L = await pulse_and_time(dut)
        vt, ft = vf[lvl]
        assert L == dvfs_busy(p, vcur, vt), (it, L)
        vcur, fcur = vt, ft
        dut.bus__raddr.value = 0x204
        await ReadOnly()
        assert (int(dut.bus__rdata.value), int(dut.settled.value), int(dut.locked.value)) == (vcur, 1, 1)
        await FallingEdge(dut.clk)
