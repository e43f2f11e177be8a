"""Quick unit tests of small RTL blocks in Amaranth's own simulator: the iterative divider and
square root (exact results after exactly their documented cycle counts), the eNVM write-busy
timing, the MAC array datapath (INT8/INT4, saturation) and the reference model's own maths."""
import random
from math import isqrt

from amaranth.sim import Simulator

from hw.arith import IterDiv, IterSqrt
from hw.mac_array import MacArray
from hw.params import AccelParams
from hw.reference import Desc, mac_tile, pack, rshr, route, sat, weight_tile, exp_lut
from hw.sram import Envm


def run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_iterdiv_exact_after_width_cycles():
    w = 33
    dut = IterDiv(w)
    rng = random.Random(3)
    cases = [(0, 1), (1, 1), ((1 << w) - 1, 1), ((1 << w) - 1, (1 << w) - 1), (12345, 7), (5, 9)]
    cases += [(rng.randrange(1 << w), rng.randrange(1, 1 << 20)) for _ in range(20)]

    async def bench(ctx):
        for num, den in cases:
            ctx.set(dut.load, 1)
            ctx.set(dut.num, num)
            ctx.set(dut.den, den)
            await ctx.tick()
            ctx.set(dut.load, 0)
            ctx.set(dut.step, 1)
            for _ in range(w):
                await ctx.tick()
            ctx.set(dut.step, 0)
            assert ctx.get(dut.q) == num // den, (num, den)

    run(dut, bench)


def test_itersqrt_exact_after_iters_cycles():
    p = AccelParams.small()
    dut = IterSqrt(p.sq)
    rng = random.Random(4)
    xs = [0, 1, 2, 3, 4, 15, 16, 17, (1 << p.sw) - 1, 8 * 128 * 128]
    xs += [rng.randrange(1 << p.sw) for _ in range(20)]

    async def bench(ctx):
        for x in xs:
            ctx.set(dut.load, 1)
            ctx.set(dut.x, x)
            await ctx.tick()
            ctx.set(dut.load, 0)
            ctx.set(dut.step, 1)
            for _ in range(p.sq):
                await ctx.tick()
            ctx.set(dut.step, 0)
            assert ctx.get(dut.res) == isqrt(x), x

    run(dut, bench)


def test_envm_write_busy_for_t_w_cycles():
    dut = Envm(8, 32, 5)

    async def bench(ctx):
        ctx.set(dut.wr.addr, 3)
        ctx.set(dut.wr.data, 0xDEADBEEF)
        ctx.set(dut.wr.en, 1)
        await ctx.tick()
        ctx.set(dut.wr.en, 0)
        busy = []
        for _ in range(7):
            busy.append(ctx.get(dut.busy))
            await ctx.tick()
        assert busy == [1, 1, 1, 1, 1, 0, 0]
        ctx.set(dut.rd.addr, 3)
        await ctx.tick()
        assert ctx.get(dut.rd.data) == 0xDEADBEEF

    run(dut, bench)


def test_mac_array_datapath_matches_reference():
    p = AccelParams.small()
    n = p.n
    dut = MacArray(n)
    rng = random.Random(5)
    tiles = []
    for i in range(12):
        int4 = i % 3 == 2
        x = [rng.choice([-128, 127, 0, rng.randint(-128, 127)]) for _ in range(n)]
        bits = 4 if int4 else 8
        w = pack([rng.randint(-(1 << (bits - 1)), (1 << (bits - 1)) - 1) for _ in range((2 if int4 else 1) * n * n)], bits)
        tiles.append((x, w, int4, i % 2, i % 4 == 0))
    init = [(1 << 31) - 100, -(1 << 31) + 50, 7, -7]

    async def bench(ctx):
        acc = [0] * n
        for x, w, int4, half, first in tiles:
            ctx.set(dut.in_valid, 1)
            ctx.set(dut.x, pack(x, 8))
            ctx.set(dut.w, w)
            ctx.set(dut.int4, int4)
            ctx.set(dut.half, half)
            ctx.set(dut.first, first)
            ctx.set(dut.init, pack(init, 32))
            await ctx.tick()
            ctx.set(dut.in_valid, 0)
            await ctx.tick()
            acc = mac_tile(init if first else acc, x, weight_tile(p, w, int4, half))
            got = [v - (1 << 32) if v >> 31 else v for v in
                   [(ctx.get(dut.acc) >> (32 * r)) & 0xFFFFFFFF for r in range(n)]]
            assert got == acc

    run(dut, bench)


def test_reference_helpers():
    assert rshr(5, 1) == 3 and rshr(-5, 1) == -2 and rshr(-6, 2) == -1 and rshr(7, 0) == 7
    assert sat(1 << 40, 32) == (1 << 31) - 1 and sat(-(1 << 40), 16) == -32768
    assert Desc.decode(Desc(4, 2, 4095, 1, 2, 3, 255).encode()) == Desc(4, 2, 4095, 1, 2, 3, 255)
    p = AccelParams.small()
    lut = exp_lut(p)
    assert lut[0] == 32768 and all(a >= b for a, b in zip(lut, lut[1:]))
    r = route(p, [1] * 8, [[1] * 8, [-1] * 8, [0] * 8, [2] * 8], 16)
    assert r.cos == [32767, -32768, 0, 32767] and r.argmax == 0
    assert sum(r.gates) <= 32768


def test_access_counts_follow_the_schedules():
    from hw.reference import Op, access_counts
    p = AccelParams.small()
    g = access_counts(p, Desc(Op.GEMV, f=2, d=3, e=2))
    assert (g["abuf_rd"], g["obuf_rd"], g["obuf_wr"], g["macs"]) == (6, 2, 2, 6 * p.n * p.n)
    lo = access_counts(p, Desc(Op.LORA, f=2))
    assert lo["envm_rd"] == 2 * p.rk * p.kt + p.nt * 2 * p.rk and lo["obuf_wr"] == p.nt
    assert access_counts(p, Desc(Op.LOAD_ADAPTER))["envm_wr"] == p.ew
