"""LPU: eNVM adapter loading (slow writes, stream back-pressure), hot swap of the active slots,
gates written over AXI4-Lite, the LoRA path against the reference model, 16-bit saturation of the
gated rank vector and INT32 saturation of the result."""
import cocotb

from hw.reference import Buf, Desc, Op, adapter_words, pack, word_to_beats
from tb import Tb


def rand_adapter(tb, lo=-128, hi=127):
    p = tb.p
    a = [[tb.rng.randint(lo, hi) for _ in range(p.kt * p.n)] for _ in range(p.rk)]
    b = [[tb.rng.randint(lo, hi) for _ in range(p.rk)] for _ in range(p.nt * p.n)]
    return a, b


async def load_adapter(tb, e, a, b):
    p = tb.p
    beats = [bt for w in adapter_words(p, a, b) for bt in word_to_beats(w, p.b_a)]
    await tb.run(Desc(Op.LOAD_ADAPTER, a=e), beats, what=f"LOAD_ADAPTER e={e}")


async def set_gate(tb, e, g):
    await tb.write(0x100 + 4 * e, g)
    tb.model.gates[e] = g


@cocotb.test()
async def lora_path(dut):
    tb = Tb(dut)
    p = tb.p
    n = p.n
    await tb.start()
    tb.in_gap = 0.25
    for e in range(p.ne):
        await load_adapter(tb, e, *rand_adapter(tb))
    tb.in_gap = 0.0
    for e in range(p.ne):
        await set_gate(tb, e, tb.rng.randint(0, 32768))
    x = [pack([tb.rng.randint(-128, 127) for _ in range(n)], 8) for _ in range(p.kt)]
    base = [pack([tb.rng.randint(-100000, 100000) for _ in range(n)], 32) for _ in range(p.nt)]
    await tb.load(Buf.ABUF, 3, x)
    await tb.load(Buf.OBUF, 5, base)
    # default slots (0, 1); then hot swap to (2, 1) and (3, 0)
    for sh_a, sh_b in ((0, 0), (4, 2), (9, 31)):
        await tb.run(Desc(Op.LORA, f=2, a=3, b=5, c=9, d=sh_a, e=sh_b), what=f"LORA n=2 sh={sh_a},{sh_b}")
        await tb.store(Buf.OBUF, 9, p.nt)
    await tb.run(Desc(Op.ACTIVATE, f=0, a=2), what="ACTIVATE 0<-2")
    await tb.run(Desc(Op.LORA, f=2, a=3, b=5, c=9, d=3, e=1), what="LORA after swap")
    await tb.store(Buf.OBUF, 9, p.nt)
    await tb.run(Desc(Op.ACTIVATE, f=1, a=0), what="ACTIVATE 1<-0")
    await tb.run(Desc(Op.ACTIVATE, f=0, a=3), what="ACTIVATE 0<-3")
    await tb.run(Desc(Op.LORA, f=1, a=3, b=5, c=5, d=2, e=3), what="LORA n=1 in place")
    await tb.store(Buf.OBUF, 5, p.nt)
    for s in range(p.nslot):
        tb.sb.eq(f"SLOT[{s}]", await tb.read(0x140 + 4 * s), tb.model.slots[s])
    for e in range(p.ne):
        tb.sb.eq(f"GATE[{e}]", await tb.read(0x100 + 4 * e), tb.model.gates[e])

    # saturation corners: extreme A, B, x and gate 1.0 -> hs saturates at sh_a = 0;
    # base near INT32 max -> result saturates
    ext_a = [[-128] * (p.kt * n) for _ in range(p.rk)]
    ext_b = [[127 if (d + k) % 2 else -128 for k in range(p.rk)] for d in range(p.nt * n)]
    await load_adapter(tb, 3, ext_a, ext_b)
    await set_gate(tb, 3, 32768)
    await set_gate(tb, 0, 32768)
    await tb.load(Buf.ABUF, 20, [pack([-128] * n, 8)] * p.kt)
    await tb.load(Buf.OBUF, 20, [pack([(1 << 31) - 2, -(1 << 31) + 1] * (n // 2), 32)] * p.nt)
    for sh_a, sh_b in ((0, 0), (0, 5), (20, 0)):
        await tb.run(Desc(Op.LORA, f=2, a=20, b=20, c=24, d=sh_a, e=sh_b), what=f"LORA sat {sh_a},{sh_b}")
        await tb.store(Buf.OBUF, 24, p.nt)
    # overlapping base and output ranges (output one word above the base): tile order matters
    await tb.load(Buf.OBUF, 28, [pack([tb.rng.randint(-9999, 9999) for _ in range(n)], 32) for _ in range(p.nt + 1)])
    await tb.run(Desc(Op.LORA, f=2, a=3, b=28, c=29, d=2, e=1), what="LORA overlapping out = base + 1")
    await tb.store(Buf.OBUF, 28, p.nt + 1)
    # zero input
    await tb.load(Buf.ABUF, 30, [0] * p.kt)
    await tb.run(Desc(Op.LORA, f=2, a=30, b=20, c=26, d=0, e=0), what="LORA zero x")
    await tb.store(Buf.OBUF, 26, p.nt)
    tb.sb.finish()
