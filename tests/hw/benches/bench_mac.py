"""MAC array / GEMV engine through the top: INT8 and INT4 GEMV and GEMM tiles with seeded random
data, saturation via the ACC flag, INT4 sign extension, zero and extreme inputs; every command's
cycles against the spec formula, every output word against the reference model."""
import cocotb

from hw.reference import Buf, Desc, Op, pack
from tb import Tb


def rand_words(tb, count, lanes, bits, lo=None, hi=None):
    lo = -(1 << (bits - 1)) if lo is None else lo
    hi = (1 << (bits - 1)) - 1 if hi is None else hi
    return [pack([tb.rng.randint(lo, hi) for _ in range(lanes)], bits) for _ in range(count)]


@cocotb.test()
async def gemv_random_and_corners(dut):
    tb = Tb(dut)
    p = tb.p
    n = p.n
    await tb.start()
    tb.in_gap, tb.out_gap = 0.3, 0.3     # back-pressure on both streams
    # random activations and INT8 weights
    await tb.load(Buf.ABUF, 0, rand_words(tb, 24, n, 8))
    await tb.load(Buf.WBUF, 0, rand_words(tb, 12, n * n, 8))
    # GEMV (m=1) and GEMM (m=3), INT8
    await tb.run(Desc(Op.GEMV, f=0, a=0, b=0, c=0, d=4, e=1), what="GEMV int8 kt=4 m=1")
    await tb.run(Desc(Op.GEMV, f=0, a=4, b=2, c=1, d=3, e=3), what="GEMM int8 kt=3 m=3")
    # INT4 (packed, sign extended): random nibbles include 0x8..0xF
    await tb.load(Buf.WBUF, 12, rand_words(tb, 4, 2 * n * n, 4))
    await tb.run(Desc(Op.GEMV, f=1, a=0, b=12, c=4, d=5, e=2), what="GEMM int4 kt=5 m=2")
    # K split: accumulate onto the previous result
    await tb.run(Desc(Op.GEMV, f=2, a=10, b=0, c=4, d=2, e=2), what="GEMM acc kt=2 m=2")
    tb.in_gap = tb.out_gap = 0.0
    await tb.store(Buf.OBUF, 0, 6)

    # extreme inputs: -128 x -128 everywhere, accumulated onto INT32 max -> saturates high
    await tb.load(Buf.ABUF, 30, [pack([-128] * n, 8)] * 4)
    await tb.load(Buf.WBUF, 20, [pack([-128] * (n * n), 8)] * 4)
    await tb.load(Buf.OBUF, 10, [pack([(1 << 31) - 1 - 5] * n, 32), pack([-(1 << 31) + 3] * n, 32)])
    await tb.run(Desc(Op.GEMV, f=2, a=30, b=20, c=10, d=4, e=1), what="GEMV saturate +")
    # 127 x -128 onto INT32 min -> saturates low
    await tb.load(Buf.ABUF, 34, [pack([127] * n, 8)] * 4)
    await tb.run(Desc(Op.GEMV, f=2, a=34, b=20, c=11, d=4, e=1), what="GEMV saturate -")
    # INT4 extremes: all -8 (0x8) and all +7
    await tb.load(Buf.WBUF, 24, [pack([-8] * (2 * n * n), 4), pack([7] * (2 * n * n), 4)])
    await tb.run(Desc(Op.GEMV, f=1, a=30, b=24, c=12, d=4, e=1), what="GEMV int4 extremes")
    # zero inputs
    await tb.load(Buf.ABUF, 40, [0] * 2)
    await tb.run(Desc(Op.GEMV, f=0, a=40, b=0, c=13, d=2, e=1), what="GEMV zero x")
    # longest tiles that fit
    await tb.run(Desc(Op.GEMV, f=1, a=0, b=0, c=14, d=p.wbuf_depth, e=2), what="GEMM int4 kt=32 m=2")
    await tb.store(Buf.OBUF, 10, 6)
    tb.sb.finish()
