"""Benchmarks of the cycle-level simulator (sim/), printed as tables (and --out JSON):

1. speed: simulated cycles per second of wall time for the functional model (random command
   streams with data, asic28) and for the per-tile-class LLM costing; wall time of a full
   SmolLM2-135M decode token (all layers + LM head, cold caches) and of a 128 + 128 request;
2. the same GEMM command stream on the RTL (Icarus + cocotb, small instance) and on sim/: cycles
   per command equal, simulated cycles per wall second and their ratio (target >= 1000x);
3. SCALE-Sim (PyPI scalesim) on a few GEMM topologies, 16x16, WS and OS dataflows, next to ours;
4. energy per token of SmolLM2-135M, dense and a 20%-pruned shape, at three operating points.

    .venv/bin/python experiments/bench_sim.py [--quick] [--no-rtl] [--no-scalesim] [--out results.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from clone.model.config import ModelConfig  # noqa: E402
from hw.params import AccelParams  # noqa: E402
from hw.reference import Op  # noqa: E402
from sim.energy import CATEGORIES, point_table  # noqa: E402
from sim.link import StreamLink  # noqa: E402
from sim.machine import Accelerator  # noqa: E402
from sim.randstream import policy_setup, random_stream  # noqa: E402
from sim.workload import (Gemm, Mapper, _MAPPERS, gemm_commands, pass_cost, resolve_model, simulate,  # noqa: E402
                          write_topology)

pd.set_option("display.width", 200)


# ------------------------------------------------------------------------------------------ 1
def speed_functional(seeds: int) -> dict:
    p = AccelParams.asic28()
    cycles = wall = 0.0
    ncmd = 0
    for seed in range(seeds):
        items = random_stream(p, seed, length=200)
        sim = Accelerator(p)
        sim.policy, sim.lenlut = (list(x) for x in policy_setup(p, seed))
        t0 = time.perf_counter()
        for it in items:
            sim.push(it.desc, it.beats)
        sim.drain()
        wall += time.perf_counter() - t0
        cycles += sim.now
        ncmd += sim.cmd_count
    return {"commands": ncmd, "sim_cycles": cycles, "wall_s": wall, "cycles_per_s": cycles / wall}


def speed_token(cfg: ModelConfig) -> dict:
    p = AccelParams.asic28()
    pt = point_table().get("l8")
    from sim.workload import default_link
    _MAPPERS.clear()
    mapper = Mapper(p, default_link(pt))
    t0 = time.perf_counter()
    cost = pass_cost(mapper, cfg, 1, 129, 8, 8)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    pass_cost(mapper, cfg, 1, 130, 8, 8)
    warm = time.perf_counter() - t0
    cyc = sum(c.cycles for c in cost.values())
    t0 = time.perf_counter()
    _MAPPERS.clear()
    simulate(cfg, 128, 128, params=p, point=pt)
    req = time.perf_counter() - t0
    return {"token_cycles": cyc, "token_wall_cold_s": cold, "token_wall_warm_s": warm,
            "cycles_per_s_cold": cyc / cold, "request_128_128_wall_s": req}


# ------------------------------------------------------------------------------------------ 2
def rtl_vs_sim(m: int, n: int, k: int, asic28: bool = False) -> dict | None:
    if shutil.which("iverilog") is None:
        print("(Icarus not installed: RTL comparison skipped)", file=sys.stderr)
        return None
    sys.path[:0] = [str(ROOT / "tests" / "hw"), str(ROOT / "tests" / "sim_benches")]
    import rtl_harness as rtl
    from hw.top import CloneAccel
    p = AccelParams.asic28() if asic28 else AccelParams.small()
    top = "clone_accel_asic28" if asic28 else "clone_accel"
    descs = [d for c in gemm_commands(p, m, n, k, 8) for d in c.expand()]
    rng = np.random.default_rng(0)
    items = []
    for d in descs:
        beats = rng.integers(0, 1 << 32, d.d * p.beats(d.f)).tolist() if d.op == Op.LOAD else None
        out = d.d * p.beats(d.f) if d.op == Op.STORE else 0
        items.append({"word": d.encode(), "beats": beats, "out_beats": out})
    # sim: functional cycle-level run of the same stream
    sim = Accelerator(p)
    t0 = time.perf_counter()
    recs = sim.run(descs, {i: it["beats"] for i, it in enumerate(items) if it["beats"]})
    sim_wall = time.perf_counter() - t0
    mapper = Mapper(p, StreamLink.ideal())
    t0 = time.perf_counter()
    ana = mapper.run(gemm_commands(p, m, n, k, 8))
    ana_wall = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        sf, rf = Path(tmp) / "stream.json", Path(tmp) / "result.json"
        sf.write_text(json.dumps(items))
        os.environ["CLONE_STREAM_FILE"], os.environ["CLONE_RESULT_FILE"] = str(sf), str(rf)
        vfile = rtl.verilog_for(top, lambda: CloneAccel(p))
        bdir = rtl.build("icarus", vfile, top)
        t0 = time.perf_counter()
        rtl.run_bench("icarus", bdir, top, "bench_stream", Path(tmp) / "run")
        rtl_total_wall = time.perf_counter() - t0
        res = json.loads(rf.read_text())
    t_sim = [r.t for r in recs]
    return {"instance": "asic28" if asic28 else "small", "gemm": f"{m}x{n}x{k}", "commands": len(descs), "T_equal": res["t"] == t_sim,
            "sum_T_plus_1": sum(t + 1 for t in t_sim), "analytic_cycles": ana.cycles,
            "rtl_sim_cycles": res["cycles"], "rtl_wall_s": res["wall_s"], "rtl_wall_incl_startup_s": rtl_total_wall,
            "rtl_cycles_per_s": res["cycles"] / res["wall_s"],
            "sim_cycles_per_s": sim.now / sim_wall, "analytic_cycles_per_s": ana.cycles / ana_wall,
            "ratio_functional": (sim.now / sim_wall) / (res["cycles"] / res["wall_s"]),
            "ratio_analytic": (ana.cycles / ana_wall) / (res["cycles"] / res["wall_s"])}


# ------------------------------------------------------------------------------------------ 3
SCALESIM_CFG = """[general]
run_name = {name}

[run_presets]
InterfaceBandwidth = USER
UseRamulatorTrace = False

[architecture_presets]
ArrayHeight = 16
ArrayWidth = 16
ifmapsramszkB = 16
filtersramszkB = 128
ofmapsramszkB = 32
IfmapOffset = 0
FilterOffset = 10000000
OfmapOffset = 20000000
Dataflow = {df}
Bandwidth = {bw}
ReadRequestBuffer = 32
WriteRequestBuffer = 32

[layout]
IfmapCustomLayout = False
FilterCustomLayout = False
IfmapSRAMBankBandwidth = {bw}
IfmapSRAMBankNum = 1
IfmapSRAMBankPort = 2
FilterSRAMBankBandwidth = {bw}
FilterSRAMBankNum = 1
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40
"""


def _patch_scalesim() -> None:
    """scalesim 3.0.0 calls int(max(2-D array)), which numpy >= 2 rejects; give its two memory
    modules a max() that reduces arrays (behaviour unchanged otherwise)."""
    import builtins
    import scalesim.memory.double_buffered_scratchpad_mem as dm
    import scalesim.memory.read_buffer as rb

    def npmax(*a, **kw):
        if len(a) == 1 and isinstance(a[0], np.ndarray):
            return np.max(a[0])
        r = builtins.max(*a, **kw)
        return np.max(r) if isinstance(r, np.ndarray) else r
    for mod in (rb, dm):
        mod.max = npmax


def scalesim_compare(gemms: list[Gemm]) -> pd.DataFrame | None:
    """Cycles of each GEMM on our 16x16 array (GEMV commands only = compute; whole stream with an
    ideal 1 beat/cycle link) and on SCALE-Sim 16x16 in WS and OS, with 4 B/cycle (our port) and
    256 B/cycle (near-ideal) backing-store bandwidth; SCALE-Sim's compute = total - stall cycles."""
    try:
        import scalesim  # noqa: F401
    except ImportError:
        print("(scalesim not installed: pip install scalesim; comparison skipped)", file=sys.stderr)
        return None
    _patch_scalesim()
    from contextlib import redirect_stdout
    from scalesim.scale_sim import scalesim as ScaleSim
    p = AccelParams.asic28()
    ideal = Mapper(p, StreamLink.ideal())
    rows = {g.name: {"gemm": g.name, "M": g.m, "N": g.n, "K": g.k} for g in gemms}
    for g in gemms:
        cmds = list(gemm_commands(p, g.m, g.n, g.k, 8))
        gemv = [c for c in cmds if c.desc.op == Op.GEMV]
        rows[g.name]["ours_compute"] = ideal.run(gemv).cycles
        rows[g.name]["ours_total_ideal_link"] = ideal.run(cmds).cycles
    with tempfile.TemporaryDirectory() as tmp:
        topo = Path(tmp) / "topo.csv"
        write_topology(gemms, topo, trailing_comma=True)
        layout = Path(tmp) / "layout.csv"
        layout.write_text("Layer name," + ",".join(["x"] * 20) + ",\n" + "".join(
            f"{g.name}," + ",".join(["1"] * 6 + ["0", "1", "2"] * 2 + ["0", "1", "2", "3"] * 2) + ",\n"
            for g in gemms))
        for df in ("ws", "os"):
            for bw in (4, 256):
                name = f"{df}_bw{bw}"
                cfg = Path(tmp) / f"{name}.cfg"
                cfg.write_text(SCALESIM_CFG.format(name=name, df=df, bw=bw))
                with open(os.devnull, "w") as null, redirect_stdout(null):
                    s = ScaleSim(save_disk_space=True, verbose=False, config=str(cfg), topology=str(topo),
                                 layout=str(layout), input_type_gemm=True)
                    s.run_scale(top_path=str(Path(tmp) / "out"))
                rep = pd.read_csv(Path(tmp) / "out" / name / "COMPUTE_REPORT.csv", skipinitialspace=True)
                rep = rep.loc[:, ~rep.columns.str.startswith("Unnamed")]
                for g, (_, r) in zip(gemms, rep.iterrows()):
                    if bw == 256:
                        rows[g.name][f"ss_{df}_compute"] = int(r["Total Cycles"]) - int(r["Stall Cycles"])
                    rows[g.name][f"ss_{df}_bw{bw}_total"] = int(r["Total Cycles"])
    return pd.DataFrame(rows.values())


# ------------------------------------------------------------------------------------------ 4
def pruned(cfg: ModelConfig, frac: float = 0.20) -> tuple[ModelConfig, float]:
    """Remove ~frac of every layer's parameters from the FFN (multiple of 16 wide)."""
    l0 = cfg.layers[0]
    per_layer = cfg.layer_params(l0)
    cut = frac * per_layer / (3 * cfg.dim)
    ffn = int(round((l0.ffn_dim - cut) / 16) * 16)
    new = ModelConfig.from_dict({**cfg.to_dict(), "layers": [{"n_heads": l.n_heads, "n_kv_heads": l.n_kv_heads,
                                                              "ffn_dim": ffn} for l in cfg.layers]})
    removed = 1 - sum(new.layer_params(l) for l in new.layers) / sum(cfg.layer_params(l) for l in cfg.layers)
    return new, removed


def energy_table(cfg: ModelConfig, points: list[str]) -> pd.DataFrame:
    pr, removed = pruned(cfg)
    rows = []
    for label, c, bits in (("dense INT8", cfg, 8), (f"pruned {removed:.0%} INT8", pr, 8),
                           (f"pruned {removed:.0%} INT4", pr, 4)):
        for pt in points:
            r = simulate(c, 128, 128, point=pt, weight_bits=bits)
            s = r.decode_steps
            row = {"model": label, "point": f"{r.point.name} {r.point.label}", "tpot_ms": r.decode.time_s / s * 1e3,
                   "mJ_per_token": r.decode.total_J / s * 1e3}
            row.update({f"{k}_mJ": r.decode.energy_J[k] / s * 1e3 for k in CATEGORIES})
            rows.append(row)
    return pd.DataFrame(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-rtl", action="store_true")
    ap.add_argument("--no-scalesim", action="store_true")
    ap.add_argument("--rtl-asic28", action="store_true",
                    help="also run a 16x576x576 GEMM on the asic28 RTL (about 2 minutes of Icarus)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out: dict = {}
    cfg = resolve_model("smollm2-135m")

    print("== 1. simulator speed")
    f = speed_functional(2 if args.quick else 5)
    t = speed_token(cfg)
    out["functional"], out["token"] = f, t
    print(f"functional model (asic28, random streams with data): {f['commands']} commands, "
          f"{f['sim_cycles']:.0f} cycles in {f['wall_s']:.3f} s = {f['cycles_per_s']:.3g} cycles/s")
    print(f"SmolLM2-135M decode token (30 layers + head, ctx 129, l8): {t['token_cycles']} cycles, "
          f"wall {t['token_wall_cold_s'] * 1e3:.1f} ms cold / {t['token_wall_warm_s'] * 1e3:.2f} ms warm "
          f"({t['cycles_per_s_cold']:.3g} cycles/s); 128 + 128 request: {t['request_128_128_wall_s']:.3f} s")

    if not args.no_rtl:
        print("\n== 2. RTL (Icarus) vs sim on the same GEMM command stream (small instance)")
        r = rtl_vs_sim(8, 32, 64) if args.quick else rtl_vs_sim(16, 64, 128)
        out["rtl"] = r
        if r:
            print(pd.Series(r).to_string())
        if args.rtl_asic28:
            r = rtl_vs_sim(16, 576, 576, asic28=True)
            out["rtl_asic28"] = r
            if r:
                print(pd.Series(r).to_string())

    if not args.no_scalesim:
        print("\n== 3. SCALE-Sim vs ours (16x16, 8-bit weights; cycles)")
        gemms = [Gemm("decode_q_proj", 1, 576, 576), Gemm("prefill16_q_proj", 16, 576, 576),
                 Gemm("attn_score", 48, 128, 64), Gemm("ffn_down_m4", 4, 576, 1536)]
        if args.quick:
            gemms = gemms[:1] + gemms[2:3]
        t0 = time.perf_counter()
        df = scalesim_compare(gemms)
        if df is not None:
            out["scalesim"] = df.to_dict(orient="records")
            print(df.to_string(index=False))
            print(f"(SCALE-Sim wall time {time.perf_counter() - t0:.1f} s)")

    print("\n== 4. SmolLM2-135M energy per decode token (prompt 128, 128 generated), mJ")
    et = energy_table(cfg, ["l0", "l8", "l15"])
    out["energy"] = et.to_dict(orient="records")
    print(et.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
