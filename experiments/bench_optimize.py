"""Benchmark of `clone optimize` on the embedded SmolLM2-135M (issue 3, "Must show"), one run:

1. the CLONE ratio search against the uniform, random, ShortGPT and FLAP baselines at the same
   parameter budget (20% of all parameters removed), no recovery;
2. LoRA recovery of the searched model: the perplexity gap to the dense model before and after;
3. weight-only quantization of the dense model: INT8 per-channel and g128 RTN, INT4 g64 and g128 with
   RTN and GPTQ;
4. decode speed and memory of the optimized model (searched 20% pruning + LoRA recovery + INT4 g128
   GPTQ, exported to ONNX Runtime MatMulNBits) against dense fp32 PyTorch;
5. wall time and peak RSS of `clone optimize smollm2-135m --profile jetson-orin-nano-8gb` and of the
   same with `--fast`;
6. with --memory-1b: peak RSS of `clone optimize --fast` on a random-initialised 1B-parameter Llama
   checkpoint (fp32, written under .data/) against the checkpoint's bytes.

    .venv/bin/python experiments/bench_optimize.py [--out .data/bench_optimize] [--reuse]
        [--recover-steps 100] [--memory-1b] [--only memory-1b]

Protocol. Perplexity: Shakespeare test split, 32 windows of 512 tokens evenly spaced over the split
(16,352 tokens scored; `Stages.test_perplexity`, the report of `clone optimize`). Every pruned model uses the optimizer's
own calibration (32 windows of 256 tokens of the train split, seed 0) and importance scores; the
search scores candidates on the validation split only. Rows 1-4 run in this process with the default
recipe; row 5 runs the CLI as a subprocess (its searched ratios feed rows 1, 2 and 4). Decode speed:
greedy, batch 1, KV cache, 128-token prompt, best of interleaved rounds (experiments/bench_backends.py);
memory: peak RSS of a fresh process that loads the model and decodes. The machine may be shared with
other jobs, so times are upper bounds.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

import clone  # noqa: E402,F401  (before torch: sets the passive OpenMP wait policy)
import torch  # noqa: E402

from clone.model.llama import Transformer  # noqa: E402

MODEL = "smollm2-135m"
PROFILE = "jetson-orin-nano-8gb"
TARGET = 0.2
QUANT = [(8, 0, "rtn"), (8, 128, "rtn"), (4, 64, "rtn"), (4, 64, "gptq"), (4, 128, "rtn"), (4, 128, "gptq")]
MB = 2**20


# -- measured subprocesses --------------------------------------------------------------------------

@dataclass
class Run:
    """One measured subprocess: wall time and the peak RSS the kernel recorded for it."""

    cmd: list[str]
    seconds: float
    peak_rss: int
    returncode: int


# Linux carries a process's peak-RSS mark across fork and exec (the new image inherits the old memory
# map's high-water mark), so a child started from this large process would report at least our own
# peak. A small launcher process starts the command instead: its child's mark starts from the
# launcher's few megabytes, and wait4 there returns that child's own ru_maxrss (kilobytes).
LAUNCHER = """
import json, os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
open(sys.argv[1], "w").write(json.dumps([os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024]))
"""


def run_measured(cmd: list[str], log: Path) -> Run:
    """Run `cmd` with output to `log`, through the launcher; wall time and the command's peak RSS."""
    log.parent.mkdir(parents=True, exist_ok=True)
    result = log.with_suffix(".rss.json")
    start = time.perf_counter()
    with open(log, "w") as f:
        launcher = subprocess.run([sys.executable, "-c", LAUNCHER, str(result), *cmd], stdout=f,
                                  stderr=subprocess.STDOUT, cwd=ROOT)
    seconds = time.perf_counter() - start
    if launcher.returncode or not result.exists():
        return Run(cmd, seconds, 0, launcher.returncode or 1)
    returncode, peak = json.loads(result.read_text())
    return Run(cmd, seconds, peak, returncode)


def cli_optimize(checkpoint: str, out: Path, flags: list[str], reuse: bool) -> tuple[Run, dict]:
    """`clone optimize CHECKPOINT --profile PROFILE --out OUT FLAGS`, from scratch (unless reused)."""
    runs_file = out.parent / f"{out.name}.run.json"
    if reuse and runs_file.exists() and (out / "report.json").exists():
        return Run(**json.loads(runs_file.read_text())), json.loads((out / "report.json").read_text())
    for stale in (out, out.parent / f"{out.name}.partial"):
        shutil.rmtree(stale, ignore_errors=True)
    cmd = [sys.executable, "-m", "clone", "optimize", checkpoint, "--profile", PROFILE, "--out", str(out), *flags]
    print(f"running {' '.join(cmd[1:])} ...", file=sys.stderr, flush=True)
    run = run_measured(cmd, out.parent / f"{out.name}.log")
    if run.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({run.returncode}); see {out.parent / f'{out.name}.log'}")
    runs_file.write_text(json.dumps(asdict(run)))
    return run, json.loads((out / "report.json").read_text())


# -- the optimizer's stages, in process ---------------------------------------------------------------

@dataclass
class Row:
    name: str
    ppl: float
    removed: float | None = None  # fraction of the dense model's parameters
    extra: dict = field(default_factory=dict)


class Lab:
    """The dense SmolLM2 with the optimizer's own `Stages` (default recipe), so calibration windows,
    importance scores, baseline statistics and the test protocol are those of `clone optimize`."""

    def __init__(self, work: Path) -> None:
        from clone.model.checkpoint import load_checkpoint
        from clone.optimize import Recipe
        from clone.optimize.costs import CostEvaluator
        from clone.optimize.stages import Stages

        ckpt = load_checkpoint(MODEL)
        recipe = Recipe(profile=PROFILE).validate()
        self.stages = Stages(ckpt, recipe, CostEvaluator(recipe), work, lambda m: print(m, file=sys.stderr), False)
        self.model: Transformer = ckpt.model
        self.tokenizer = ckpt.tokenizer
        self.dense_ppl = self.ppl(self.model)

    def ppl(self, model: Transformer) -> float:
        return self.stages.test_perplexity(model).ppl

    def row(self, name: str, model: Transformer, **extra) -> Row:
        removed = 1 - model.config.param_count() / self.model.config.param_count()
        row = Row(name, self.ppl(model), removed, extra)
        print(f"  {name}: {row.ppl:.2f} ({removed:.1%} removed)", file=sys.stderr, flush=True)
        return row

    def prune(self, ratios: list[float], split: str | None = None, importance=None) -> Transformer:
        from clone.prune import prune_model

        return prune_model(self.model, ratios, importance=importance or self.stages.importance,
                           split=split or self.stages.recipe.split)


def baseline_rows(lab: Lab) -> list[Row]:
    """Each baseline's ratios through the optimizer's pruner (same importance and split as the
    search), plus LLM-Pruner's and FLAP's own pruners as published."""
    from clone.prune import compute_importance, flap_config, fluctuation_channels, prune_to_config

    st, recipe = lab.stages, lab.stages.recipe
    pruner = f"{recipe.importance}, {recipe.split} split"
    rows = [lab.row(f"{name} ratios ({pruner})", lab.prune(st.baseline(name, TARGET)))
            for name in ("uniform", "random", "shortgpt", "flap")]
    taylor = st.importance if recipe.importance == "taylor" else compute_importance(lab.model, "taylor", st.calib)
    rows.append(lab.row("uniform, LLM-Pruner (taylor, balanced split)",
                        lab.prune(st.baseline("uniform", TARGET), "balanced", taylor)))
    fluct = compute_importance(lab.model, "fluctuation", st.calib)
    shapes = flap_config(lab.model.config, fluctuation_channels(lab.model, st.calib), TARGET)
    rows.append(lab.row("FLAP, own shapes (fluctuation)", prune_to_config(lab.model, shapes, fluct)))
    return rows


def recovery_row(lab: Lab, model: Transformer, steps: int, lr: float) -> Row:
    """LoRA recovery (rank 8, alpha 16, all projections) on fresh train-split windows, merged."""
    from clone.data.calibration import calibration_samples
    from clone.lora import merge_lora, recover

    windows = calibration_samples(lab.tokenizer, "shakespeare", "train", 4 * steps, 256, seed=1)
    start = time.perf_counter()
    res = recover(model, windows, steps=steps, lr=lr, seed=0, progress=True)
    merge_lora(model)
    return lab.row(f"CLONE search + LoRA recovery ({steps} steps of 4 x 256, lr {lr:g}, merged)", model,
                   loss=(res.first_loss, res.last_loss), seconds=time.perf_counter() - start)


def quantized(model: Transformer, bits: int, group: int, method: str, calib: torch.Tensor) -> Transformer:
    """A quantized copy; group 0 = per-channel; pruned or 576-wide rows may end in a shorter group."""
    from clone.quant import quantize_model, quantized_modules

    q = quantize_model(copy.deepcopy(model), bits=bits, group_size=group or None, method=method,
                       calib=calib if method == "gptq" else None, partial_groups=True)
    for mod in quantized_modules(q).values():
        mod.cache_weight(True)  # dequantize once: perplexity runs the same numbers faster
    return q


def quant_rows(lab: Lab) -> list[Row]:
    from clone.quant import model_nbytes

    rows = []
    for bits, group, method in QUANT:
        start = time.perf_counter()
        q = quantized(lab.model, bits, group, method, lab.stages.calib)
        seconds = time.perf_counter() - start
        label = f"INT{bits} {'per-channel' if not group else f'g{group}'} {method.upper()}"
        rows.append(lab.row(label, q, bytes=model_nbytes(q), seconds=seconds))
        del q
    return rows


# -- decode speed and memory --------------------------------------------------------------------------

DECODE_WORKER = """
import sys
sys.path[:0] = {paths!r}
import clone, numpy as np, torch
from bench_backends import decode_rate
kind, path = {kind!r}, {path!r}
if kind == "torch":
    from clone.model.checkpoint import load_checkpoint
    from clone.runtime.backends import TorchBackend
    backend = TorchBackend(load_checkpoint(path).model)
else:
    from clone.runtime.backends import OrtBackend
    backend = OrtBackend(path, spinning=False)
prompt = [int(t) for t in np.random.default_rng(0).integers(100, 40000, 128)]
print(decode_rate(backend, prompt, 32)[0])
"""


def process_peak_rss(kind: str, path: str, log: Path) -> int:
    """Peak RSS of a fresh Python process that loads the model and decodes 32 tokens."""
    code = DECODE_WORKER.format(paths=[str(ROOT), str(ROOT / "experiments")], kind=kind, path=path)
    run = run_measured([sys.executable, "-c", code], log)
    if run.returncode:
        raise SystemExit(f"decode worker for {path} failed; see {log}")
    return run.peak_rss


def speed_rows(lab: Lab, optimized: Transformer, work: Path, rounds: int, steps: int) -> list[dict]:
    """Dense fp32 PyTorch against the optimized model on ONNX Runtime (MatMulNBits at accuracy level
    0, the export `clone optimize` ships, and 4, int8 activations), interleaved rounds."""
    import numpy as np
    from bench_backends import decode_rate, onnx_weight_bytes, torch_weight_bytes

    from clone.export.onnx import export_onnx
    from clone.quant import model_nbytes
    from clone.runtime.backends import OrtBackend, TorchBackend

    exports = {level: export_onnx(optimized, work / f"optimized_acc{level}.onnx", last_logits_only=True,
                                  accuracy_level=level) for level in (0, 4)}
    dense_dir = lab.stages.ckpt.source  # the built-in name: the worker loads the cached fp32 copy
    backends = {"dense fp32, PyTorch": (TorchBackend(lab.model), torch_weight_bytes(lab.model),
                                        model_nbytes(lab.model), ("torch", dense_dir))}
    for level, info in exports.items():
        backends[f"optimized INT4, ORT MatMulNBits acc {level}"] = (
            OrtBackend(info.path, spinning=False), onnx_weight_bytes(info.path), info.bytes_on_disk, ("ort", str(info.path)))
    prompt = [int(t) for t in np.random.default_rng(0).integers(100, lab.model.config.vocab_size - 100, 128)]
    rates: dict[str, list[float]] = {k: [] for k in backends}
    for r in range(rounds):
        for name, (backend, *_rest) in backends.items():
            rates[name].append(decode_rate(backend, prompt, steps)[0])
        print(f"  decode round {r + 1}/{rounds}: " + ", ".join(f"{v[-1]:.1f}" for v in rates.values()),
              file=sys.stderr, flush=True)
    rows = []
    for name, (_, read, stored, (kind, path)) in backends.items():
        rss = process_peak_rss(kind, path, work / f"decode_{kind}_{len(rows)}.log")
        rows.append({"name": name, "tok_s": max(rates[name]), "read_MB": read / MB, "stored_MB": stored / MB,
                     "peak_rss_MB": rss / MB})
    return rows


# -- the 1B memory check ------------------------------------------------------------------------------

LLAMA_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                num_key_value_heads=8, head_dim=64, vocab_size=49152, max_position_embeddings=2048,
                rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True)


def llama_tensors(cfg: dict) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of a Hugging Face Llama checkpoint with this config, read off our own model
    built on the meta device (no memory); a tied lm_head is not stored."""
    from clone.model.hf_loader import config_from_hf

    with torch.device("meta"):
        model = Transformer(config_from_hf(cfg, Path(cfg["_name_or_path"])))
    tied = model.config.tie_embeddings
    return [(name if name.startswith("lm_head") else f"model.{name}", tuple(t.shape))
            for name, t in model.state_dict().items() if not (tied and name == "lm_head.weight")]


def write_safetensors_streaming(path: Path, tensors: list[tuple[str, tuple[int, ...]]], seed: int = 0) -> int:
    """A random fp32 safetensors file written one tensor at a time (N(0, 0.02), norms 1), so making a
    4 GB checkpoint needs one tensor of memory. Returns the file's bytes."""
    import numpy as np

    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in tensors:
        n = 4 * int(np.prod(shape))
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    gen = torch.Generator().manual_seed(seed)
    with open(path, "wb") as f:
        f.write(len(blob).to_bytes(8, "little") + blob)
        for name, shape in tensors:
            t = torch.ones(shape) if name.endswith("norm.weight") else torch.randn(shape, generator=gen) * 0.02
            f.write(t.numpy().data)
    return path.stat().st_size


def random_llama_1b(directory: Path) -> int:
    """config.json + model.safetensors + SmolLM2's tokenizer (vocabulary 49,152); returns the bytes."""
    from clone.model.checkpoint import load_checkpoint

    weights = directory / "model.safetensors"
    if weights.exists() and (directory / "config.json").exists():
        return weights.stat().st_size
    directory.mkdir(parents=True, exist_ok=True)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "float32",
           "bos_token_id": 1, "eos_token_id": 2, "_name_or_path": "random-llama-1b", **LLAMA_1B}
    load_checkpoint(MODEL).tokenizer.save(directory)
    size = write_safetensors_streaming(weights, llama_tensors(cfg))
    (directory / "config.json").write_text(json.dumps(cfg, indent=1))
    return size


def memory_1b(out: Path, reuse: bool) -> dict:
    ckpt = ROOT / ".data" / "bench_optimize" / "llama-1b-random"
    size = random_llama_1b(ckpt)
    run, report = cli_optimize(str(ckpt), out / "llama1b_fast", ["--fast"], reuse)
    return {"checkpoint_bytes": size, "params": report["params"]["dense"], "run": asdict(run),
            "ratio": run.peak_rss / size, "steps": report["time_s"]["steps"]}


# -- printing -----------------------------------------------------------------------------------------

def met(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def print_search(lab: Lab, rows: list[Row], clone_row: Row, report: dict) -> bool:
    search = report["search"]
    print(f"\n## Search vs baselines: {TARGET:.0%} of parameters removed, no recovery "
          f"(test perplexity; dense {lab.dense_ppl:.2f})\n")
    print("| ratios (pruner) | removed | perplexity | vs dense |\n|---|---|---|---|")
    for r in [*rows, clone_row]:
        print(f"| {r.name} | {r.removed:.1%} | {r.ppl:.2f} | {r.ppl / lab.dense_ppl:.2f}x |")
    best = min(rows, key=lambda r: r.ppl)
    b = search["best"]
    print(f"\nsearch: {search['records']} candidates screened on the validation split in {search['search_s']:.0f} s, "
          f"{len(search['finalists'])} finalists re-scored on {search['confirm_tokens']:,} validation tokens; best "
          f"from {b['source']} (validation {b['screen_ppl']:.2f} screening, {b['ppl']:.2f} re-scored); the CLI "
          f"report's test perplexity of the same model {report['perplexity']['optimized']:.2f}")
    sources = {}
    for f in search["finalists"]:
        sources[f["source"].split("+")[0]] = sources.get(f["source"].split("+")[0], 0) + 1
    print("finalists by source: " + ", ".join(f"{k} {v}" for k, v in sorted(sources.items())))
    ok = clone_row.ppl < best.ppl
    print(f"target CLONE search beats every baseline: {clone_row.ppl:.2f} vs best baseline {best.ppl:.2f} "
          f"({best.name}), {met(ok)}")
    return ok


def print_recovery(lab: Lab, before: Row, after: Row) -> bool:
    gap0, gap1 = before.ppl - lab.dense_ppl, after.ppl - lab.dense_ppl
    print("\n## LoRA recovery of the searched model\n")
    print("| model | perplexity | gap to dense |\n|---|---|---|")
    print(f"| dense | {lab.dense_ppl:.2f} | |")
    for r in (before, after):
        print(f"| {r.name} | {r.ppl:.2f} | {r.ppl - lab.dense_ppl:+.2f} |")
    print(f"\nrecovery took {after.extra['seconds']:.0f} s; training loss {after.extra['loss'][0]:.3f} -> "
          f"{after.extra['loss'][1]:.3f}")
    shrink = 1 - gap1 / gap0 if gap0 > 0 else float("nan")
    print(f"target gap shrinks after recovery: {gap0:.2f} -> {gap1:.2f} ({shrink:.0%} smaller), {met(gap1 < gap0)}")
    return gap1 < gap0


def print_quant(lab: Lab, rows: list[Row]) -> bool:
    from clone.quant import model_nbytes

    print(f"\n## Quantization of the dense model (dense {lab.dense_ppl:.2f}, {model_nbytes(lab.model) / MB:.0f} MiB)\n")
    print("| setting | perplexity | change | MiB | seconds |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.name} | {r.ppl:.2f} | {r.ppl / lab.dense_ppl - 1:+.2%} | {r.extra['bytes'] / MB:.1f} | "
              f"{r.extra['seconds']:.0f} |")
    by = {r.name: r.ppl for r in rows}
    int8 = min(by["INT8 per-channel RTN"], by["INT8 g128 RTN"])
    ok8 = int8 <= 1.01 * lab.dense_ppl
    ok4 = by["INT4 g128 GPTQ"] < by["INT4 g128 RTN"]
    print(f"target INT8 (per-channel or g128 RTN) within 1% of dense: {int8 / lab.dense_ppl - 1:+.2%}, {met(ok8)}")
    print(f"target INT4 g128 GPTQ better than RTN: {by['INT4 g128 GPTQ']:.2f} vs {by['INT4 g128 RTN']:.2f}, {met(ok4)}")
    return ok8 and ok4


def print_speed(final: Row, rows: list[dict]) -> bool:
    print(f"\n## Decode speed and memory (optimized = searched 20% + LoRA + INT4 g128 GPTQ, test perplexity "
          f"{final.ppl:.2f})\n")
    print("| model, runtime | tokens/s | vs dense | weights read per token MiB | stored MiB | process peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    base = rows[0]["tok_s"]
    for r in rows:
        print(f"| {r['name']} | {r['tok_s']:.1f} | {r['tok_s'] / base:.2f}x | {r['read_MB']:.1f} | "
              f"{r['stored_MB']:.1f} | {r['peak_rss_MB']:.0f} |")
    shipped = rows[1]["tok_s"] / base
    ok = shipped >= 2.5
    print(f"target 20% pruned + INT4 >= 2.5x dense fp32 PyTorch (acc 0, as clone optimize exports): "
          f"{shipped:.2f}x, {met(ok)}; at accuracy level 4: {rows[2]['tok_s'] / base:.2f}x")
    return ok


def print_cli(full: Run, fast: Run, report: dict) -> bool:
    print("\n## clone optimize smollm2-135m --profile jetson-orin-nano-8gb (2 shared cores)\n")
    print("| command | wall time | peak RSS MiB | target |\n|---|---|---|---|")
    print(f"| default | {full.seconds / 60:.1f} min | {full.peak_rss / MB:.0f} | < 20 min: {met(full.seconds < 1200)} |")
    print(f"| --fast | {fast.seconds / 60:.1f} min | {fast.peak_rss / MB:.0f} | < 3 min: {met(fast.seconds < 180)} |")
    steps = ", ".join(f"{k} {v:.0f} s" for k, v in report["time_s"]["steps"].items())
    print(f"\ndefault run steps: {steps}")
    return full.seconds < 1200 and fast.seconds < 180


def print_memory(m: dict) -> bool:
    ratio = m["ratio"]
    print(f"\n## Memory: clone optimize --fast on a random {m['params'] / 1e9:.2f}B-parameter Llama (fp32)\n")
    print(f"checkpoint {m['checkpoint_bytes'] / 2**30:.2f} GiB; peak RSS {m['run']['peak_rss'] / 2**30:.2f} GiB "
          f"({ratio:.2f}x); wall time {m['run']['seconds'] / 60:.1f} min")
    print("steps: " + ", ".join(f"{k} {v:.0f} s" for k, v in m["steps"].items()))
    print(f"target peak RSS <= 2x the checkpoint: {ratio:.2f}x, {met(ratio <= 2)}")
    return ratio <= 2


# -- main ---------------------------------------------------------------------------------------------

def smollm2_part(args: argparse.Namespace, out: Path) -> list[bool]:
    full, report = cli_optimize(MODEL, out / "default", [], args.reuse)
    fast, _ = cli_optimize(MODEL, out / "fast", ["--fast"], args.reuse)
    torch.set_num_threads(torch.get_num_threads())
    lab = Lab(out / "lab")
    ratios = [float(r) for r in report["ratios"]]
    rows = baseline_rows(lab)
    searched = lab.prune(ratios)
    recipe = lab.stages.recipe
    clone_row = lab.row(f"CLONE search ({recipe.importance}, {recipe.split} split)", searched)
    after = recovery_row(lab, searched, args.recover_steps, args.recover_lr)
    quant = quant_rows(lab)
    final_model = quantized(searched, 4, 128, "gptq", lab.stages.calib)
    final = lab.row("optimized: search + LoRA + INT4 g128 GPTQ", final_model)
    speed = speed_rows(lab, final_model, out / "lab", args.rounds, args.steps)
    print(f"\n# clone optimize benchmark, {MODEL}; perplexity protocol: "
          f"{lab.stages.test_perplexity(lab.model).protocol()}")
    return [print_search(lab, rows, clone_row, report), print_recovery(lab, clone_row, after),
            print_quant(lab, quant), print_speed(final, speed), print_cli(full, fast, report)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / ".data" / "bench_optimize"))
    ap.add_argument("--reuse", action="store_true", help="reuse finished CLI runs in --out (and their timings)")
    ap.add_argument("--recover-steps", type=int, default=100)
    ap.add_argument("--recover-lr", type=float, default=1e-3)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved decode rounds")
    ap.add_argument("--steps", type=int, default=32, help="decode steps per round")
    ap.add_argument("--memory-1b", action="store_true", help="also run the 1B-parameter peak-RSS check")
    ap.add_argument("--only", choices=("memory-1b",), help="run only this part")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ok = [] if args.only else smollm2_part(args, out)
    if args.memory_1b or args.only == "memory-1b":
        ok.append(print_memory(memory_1b(out, args.reuse)))
    print(f"\n{sum(ok)} of {len(ok)} targets met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
