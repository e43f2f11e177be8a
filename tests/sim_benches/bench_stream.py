"""cocotb bench for experiments/bench_sim.py: runs a command stream from a JSON file
(CLONE_STREAM_FILE: [{"word": int, "beats": [..] | null, "out_beats": int}]) on the RTL with ideal
stream ports, one command at a time through AXI4-Lite, and writes the simulated cycle count, the
per-command LAST_CYCLES and the wall time of the run to CLONE_RESULT_FILE."""
import json
import os
import time

import cocotb

from tb import CYCLES, LAST_CYCLES, Tb


@cocotb.test()
async def run_stream(dut):
    tb = Tb(dut)
    with open(os.environ["CLONE_STREAM_FILE"]) as f:
        items = json.loads(f.read())
    await tb.start()
    t0 = time.perf_counter()
    c0 = await tb.read(CYCLES)
    ts = []
    for it in items:
        src = cocotb.start_soon(tb.source(it["beats"])) if it.get("beats") else None
        snk = cocotb.start_soon(tb.sink(it["out_beats"])) if it.get("out_beats") else None
        await tb.push(it["word"])
        if src:
            await src
        if snk:
            await snk
        await tb.wait_idle()
        ts.append(await tb.read(LAST_CYCLES))
    c1 = await tb.read(CYCLES)
    wall = time.perf_counter() - t0
    with open(os.environ["CLONE_RESULT_FILE"], "w") as f:
        json.dump({"cycles": c1 - c0, "wall_s": wall, "t": ts}, f)
