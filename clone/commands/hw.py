"""`clone hw`: the accelerator's cycle-level simulator and 28 nm energy model (sim/).

  clone hw sim   --model smollm2-135m --prompt-len 128 --gen-len 128 [--array 16x16] [--vf l6|0.8V@500MHz] [--bits 8|4]
  clone hw sweep --model smollm2-135m [--points l0,l8,l15|all] [--arrays 8x8,16x16,32x32] [--bits 8,4] [--out sweep.csv]
"""
from __future__ import annotations

import argparse
import sys

from clone.errors import CloneError


def register(subparsers) -> None:
    p = subparsers.add_parser("hw", help="simulate the CLONE accelerator (cycles, latency, energy)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="hw_command", metavar="HW_COMMAND")
    s = sub.add_parser("sim", help="one model and workload at one operating point")
    _common(s)
    s.add_argument("--array", default=None, help="MAC array RxC, square (default: the profile's, 16x16)")
    s.add_argument("--vf", default=None, help="operating point: table name (l0..l15) or V@f, e.g. 0.80V@500MHz")
    s.add_argument("--bits", type=int, default=8, help="weight bits: 8 or 4 (default 8)")
    s.add_argument("--topology", default=None, help="cost a SCALE-Sim-style Layer,M,N,K CSV instead of a model")
    s.add_argument("--topology-out", default=None, help="write the model's prefill GEMM list as Layer,M,N,K CSV")
    s.add_argument("--layers", action="store_true", help="print the per-layer table")
    s.set_defaults(func=run_sim)
    w = sub.add_parser("sweep", help="operating points x array sizes x weight bits, as a table")
    _common(w)
    w.add_argument("--points", default="all", help="comma-separated points or 'all' (default)")
    w.add_argument("--arrays", default=None, help="comma-separated RxC array sizes (default: the profile's)")
    w.add_argument("--bits", default="8", help="comma-separated weight bits (default 8)")
    w.add_argument("--out", default=None, help="also write the table as CSV")
    w.set_defaults(func=run_sweep)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="clone-accel-28nm", help="accelerator profile (default clone-accel-28nm)")
    p.add_argument("--model", default="smollm2-135m", help="built-in name, model directory or .gguf file")
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--gen-len", type=int, default=128)
    p.add_argument("--buffers", default=None, help="buffer sizes in KiB, e.g. abuf=16,wbuf=128,obuf=32")
    p.add_argument("--lora-slots", type=int, default=0, help="LoRA experts mixed per token on o_proj (0 = off)")


def _buffers(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    out = {}
    for part in text.split(","):
        key, _, val = part.partition("=")
        try:
            out[key.strip()] = float(val)
        except ValueError:
            raise CloneError(f"--buffers {text!r}: expected name=KiB pairs such as abuf=16,wbuf=128") from None
    return out


def _model(args):
    import sim.costmodel  # noqa: F401  registers the accelerator cost model
    from clone.profiles import load_profile
    from sim.costmodel import AcceleratorCostModel

    prof = load_profile(args.profile)
    if getattr(prof, "kind", None) != "accelerator":
        raise CloneError(f"--profile {args.profile}: kind {prof.kind!r} is not an accelerator profile")
    return AcceleratorCostModel.from_profile(prof)


def _params(cm, array: str | None, buffers: str | None):
    from sim.workload import accel_params
    if not array and not buffers:
        return cm.params
    n = cm.params.n
    return accel_params(array or f"{n}x{n}", _buffers(buffers))


def _bits(text: str) -> list[int]:
    try:
        bits = [int(b) for b in str(text).split(",")]
    except ValueError:
        raise CloneError(f"--bits {text!r}: allowed 8, 4") from None
    for b in bits:
        if b not in (4, 8):
            raise CloneError(f"--bits {b}: not supported (allowed: 8, 4)")
    return bits


def _pos(name: str, v: int) -> None:
    if v < 1:
        raise CloneError(f"{name} {v}: must be >= 1")


def run_sim(args) -> int:
    import pandas as pd

    from sim.energy import CATEGORIES, link_spec, point_table
    from sim.link import StreamLink
    from sim.workload import model_gemms, read_topology, resolve_model, run_topology, simulate, write_topology

    _pos("--prompt-len", args.prompt_len)
    _pos("--gen-len", args.gen_len)
    bits = _bits(str(args.bits))[0]
    cm = _model(args)
    params = _params(cm, args.array, args.buffers)
    pt = point_table().get(args.vf if args.vf else cm.default_point)
    link = StreamLink.from_bandwidth(cm.bandwidth_GBps, link_spec().latency_ns, pt.freq_MHz)
    pd.set_option("display.width", 200)
    if args.topology:
        rows = run_topology(read_topology(args.topology, bits), params=params, point=pt, link=link)
        df = pd.DataFrame(rows)
        print(df[["layer", "M", "N", "K", "cycles", "time_s", "energy_J", "macs", "link_bytes"]].to_string(index=False))
        print(f"total: {df.cycles.sum()} cycles, {df.time_s.sum() * 1e3:.3f} ms, {df.energy_J.sum() * 1e3:.3f} mJ "
              f"at {pt.name} ({pt.label})")
        return 0
    cfg = resolve_model(args.model)
    if args.topology_out:
        write_topology(model_gemms(cfg, args.prompt_len, args.prompt_len, bits), args.topology_out)
        print(f"wrote {args.topology_out}", file=sys.stderr)
    rep = simulate(cfg, args.prompt_len, args.gen_len, params=params, point=pt, weight_bits=bits,
                   lora_slots=args.lora_slots, link=link, model_name=str(args.model))
    steps = max(rep.decode_steps, 1)
    print(f"{args.model} on {args.profile}: {params.n}x{params.n} array, INT{bits} weights, {pt.name} "
          f"({pt.label}), link {cm.bandwidth_GBps:g} GB/s = {float(link.rate):.3f} beats/cycle, "
          f"{link.latency_cycles} cycles latency")
    print(f"prefill {args.prompt_len} tokens: {rep.prefill.cycles} cycles, TTFT {rep.prefill.time_s * 1e3:.2f} ms, "
          f"{rep.prefill.total_J * 1e3:.3f} mJ")
    print(f"decode {rep.decode_steps} steps: {rep.decode.cycles / steps:.0f} cycles/token, "
          f"TPOT {rep.decode.time_s / steps * 1e3:.3f} ms (first {rep.decode_first_s * 1e3:.3f}, last "
          f"{rep.decode_last_s * 1e3:.3f}), {rep.energy_per_token_J * 1e3:.4f} mJ/token")
    split = pd.DataFrame({"prefill_mJ": [rep.prefill.energy_J[c] * 1e3 for c in CATEGORIES],
                          "decode_mJ_per_token": [rep.decode.energy_J[c] / steps * 1e3 for c in CATEGORIES]},
                         index=list(CATEGORIES))
    print(split.to_string(float_format=lambda v: f"{v:.4f}"))
    if args.layers:
        for ph in (rep.prefill, rep.decode):
            df = pd.DataFrame(ph.layers)
            print(f"\n{ph.phase} per layer" + (" (sum over decode steps)" if ph.phase == "decode" else ""))
            print(df[["layer", "cycles", "time_s", "energy_J", "compute_J", "sram_J", "envm_J", "dram_J",
                      "link_J", "leakage_J", "macs", "link_bytes", "commands"]].to_string(index=False))
    return 0


def run_sweep(args) -> int:
    import pandas as pd
    from tqdm import tqdm

    from sim.energy import link_spec, point_table
    from sim.link import StreamLink
    from sim.workload import resolve_model, simulate

    _pos("--prompt-len", args.prompt_len)
    _pos("--gen-len", args.gen_len)
    cm = _model(args)
    table = point_table()
    points = table.points if args.points == "all" else [table.get(x.strip()) for x in args.points.split(",")]
    arrays = [a.strip() for a in args.arrays.split(",")] if args.arrays else [None]
    bits = _bits(args.bits)
    params = [_params(cm, a, args.buffers) for a in arrays]
    cfg = resolve_model(args.model)
    rows = []
    jobs = [(p, pt, b) for p in params for pt in points for b in bits]
    for p, pt, b in tqdm(jobs, desc="hw sweep", file=sys.stderr, disable=len(jobs) < 8):
        link = StreamLink.from_bandwidth(cm.bandwidth_GBps, link_spec().latency_ns, pt.freq_MHz)
        rep = simulate(cfg, args.prompt_len, args.gen_len, params=p, point=pt, weight_bits=b,
                       lora_slots=args.lora_slots, link=link, model_name=str(args.model))
        rows.append(rep.summary())
    df = pd.DataFrame(rows)
    cols = ["array", "bits", "point", "V", "f_MHz", "ttft_ms", "tpot_ms", "prefill_mJ", "decode_mJ_per_token",
            "tok_compute_mJ", "tok_sram_mJ", "tok_envm_mJ", "tok_dram_mJ", "tok_link_mJ", "tok_leakage_mJ"]
    pd.set_option("display.width", 250)
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.out:
        from pathlib import Path
        target = Path(args.out)
        tmp = target.with_name(f".{target.name}.tmp")
        df.to_csv(tmp, index=False)
        tmp.replace(target)
        print(f"wrote {target}", file=sys.stderr)
    return 0
