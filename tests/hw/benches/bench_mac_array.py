"""Block-level bench of the MAC array datapath alone (its own Verilog): a seeded random stream of
tiles with random valid gaps (idle cycles must not disturb the accumulators), INT8 and INT4 halves,
extreme values, `first` restarts from `init`; every cycle the accumulators are scored against the
reference as of the tiles accepted two cycles earlier (the documented latency)."""
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, Timer

from hw.params import AccelParams
from hw.reference import mac_tile, pack, unpack, weight_tile


@cocotb.test()
async def mac_array_stream(dut):
    p = AccelParams.small()
    n = p.n
    rng = random.Random(int(os.environ.get("CLONE_SEED", "1")))
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.in_valid.value = 0
    for _ in range(2):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    acc = [0] * n
    hist = []                 # model accumulators after the tile driven in each cycle
    fails, checked, tiles = [], 0, 0
    for cyc in range(500):
        await FallingEdge(dut.clk)
        await ReadOnly()
        if cyc >= 2:
            got = unpack(int(dut.acc.value), 32, n)
            checked += 1
            if got != hist[cyc - 2]:
                fails.append((cyc, got, hist[cyc - 2]))
        await Timer(1, unit="ns")
        valid = rng.random() < 0.7
        dut.in_valid.value = int(valid)
        if valid:
            tiles += 1
            int4 = rng.random() < 0.4
            bits = 4 if int4 else 8
            lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
            extreme = rng.random() < 0.25
            x = [rng.choice([-128, 127]) if extreme else rng.randint(-128, 127) for _ in range(n)]
            w = pack([rng.choice([lo, hi]) if extreme else rng.randint(lo, hi)
                      for _ in range((2 if int4 else 1) * n * n)], bits)
            half = rng.randint(0, 1)
            first = rng.random() < 0.15
            init = [rng.choice([(1 << 31) - 1 - rng.randint(0, 1 << 16),
                                -(1 << 31) + rng.randint(0, 1 << 16), rng.randint(-1000, 1000)])
                    for _ in range(n)]
            dut.x.value = pack(x, 8)
            dut.w.value = w
            dut.int4.value = int(int4)
            dut.half.value = half
            dut.first.value = int(first)
            dut.init.value = pack(init, 32)
            acc = mac_tile(init if first else acc, x, weight_tile(p, w, int4, half))
        hist.append(list(acc))
    dut._log.info("%d tiles, %d cycles scored", tiles, checked)
    assert checked > 400 and tiles > 300
    assert not fails, f"{len(fails)} mismatches, first {fails[0]}"
