"""Benchmark: SmolLM2 decode speed per backend and precision, in one run, against the memory bound.

Rows: PyTorch fp32, ONNX Runtime fp32, ONNX Runtime INT4 (MatMulNBits, the model's own RTN g128
codes from clone.quant), and 20%-pruned + INT4 on ONNX Runtime (issue 3's optimized model). Each
row: decode tokens/s after a 128-token prompt (batch 1, KV cache), weight bytes read per token, and
the fraction of the memory-bandwidth bound (bytes per token / numpy copy bandwidth, read + write,
measured in the same run). The machine may be shared: backends are measured in interleaved rounds and
each reports its best round, so a burst of foreign load hurts every row alike.

Targets (ratios within this run): ORT fp32 >= 2x PyTorch fp32 and >= 70% of the bound (issue 4);
20%-pruned + INT4 >= 2.5x dense PyTorch fp32 (issue 3).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clone.export.onnx import export_onnx  # noqa: E402
from clone.model.checkpoint import load_checkpoint  # noqa: E402
from clone.model.llama import Transformer  # noqa: E402
from clone.runtime.backends import OrtBackend, TorchBackend  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import copy_bandwidth_GBps  # noqa: E402  (one memory-bound reference for both benches)


def torch_weight_bytes(model: Transformer) -> int:
    """Bytes of every projection and lm_head read per decoded token (the embedding reads one row)."""
    total = 0
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            total += mod.weight.numel() * mod.weight.element_size()
        elif hasattr(mod, "nbytes") and hasattr(mod, "qweight"):
            total += mod.nbytes()
    return total


def onnx_weight_bytes(path: Path) -> int:
    """Bytes of the initializers MatMul / MatMulNBits nodes read (the weights of a decode step)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=True)
    sizes = {t.name: len(t.raw_data) for t in proto.graph.initializer}
    used = {i for n in proto.graph.node if n.op_type in ("MatMul", "MatMulNBits", "Gemm") for i in n.input[1:]}
    return sum(sizes.get(i, 0) for i in used)


def decode_rate(backend, prompt: list[int], steps: int) -> tuple[float, float]:
    """(tokens/s over `steps` greedy decode steps after a prefill, prefill seconds)."""
    backend.reset(len(prompt) + steps + 8)
    t = time.perf_counter()
    logits = backend.prefill(prompt)
    ttft = time.perf_counter() - t
    token = int(logits.argmax())
    for _ in range(3):  # warm-up
        token = int(backend.decode(token).argmax())
    t = time.perf_counter()
    for _ in range(steps):
        token = int(backend.decode(token).argmax())
    return steps / (time.perf_counter() - t), ttft


def pruned_int4(model: Transformer, target: float, group: int) -> Transformer:
    import copy

    from clone.prune import prune_model, uniform_ratios
    from clone.quant import quantize_model

    small = prune_model(model, uniform_ratios(model.config, target), importance="magnitude")
    return quantize_model(copy.deepcopy(small), bits=4, group_size=group, method="rtn", partial_groups=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--group-size", type=int, default=128)
    ap.add_argument("--accuracy-level", type=int, default=4, help="MatMulNBits accuracy_level of the INT4 rows")
    ap.add_argument("--threads", type=int, default=None, help="default: torch.get_num_threads()")
    args = ap.parse_args()
    logging.getLogger("onnxruntime").setLevel(logging.WARNING)
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)

    from clone.quant import quantize_model

    model = load_checkpoint("smollm2-135m").model
    rng = np.random.default_rng(0)
    prompt = [int(t) for t in rng.integers(100, model.config.vocab_size - 100, args.prompt_len)]
    with tempfile.TemporaryDirectory(prefix="clone-bench-") as tmp:
        tmpd = Path(tmp)
        print("exporting ONNX models ...", file=sys.stderr)
        fp32 = export_onnx(model, tmpd / "fp32.onnx", last_logits_only=True).path
        import copy

        q4 = quantize_model(copy.deepcopy(model), bits=4, group_size=args.group_size, method="rtn",
                            partial_groups=True)
        int4 = export_onnx(q4, tmpd / "int4.onnx", last_logits_only=True, accuracy_level=args.accuracy_level).path
        del q4
        small = pruned_int4(model, 0.2, args.group_size)
        removed = 1 - small.config.param_count() / model.config.param_count()
        pint4 = export_onnx(small, tmpd / "pruned_int4.onnx", last_logits_only=True,
                            accuracy_level=args.accuracy_level).path
        del small
        backends = {
            "PyTorch fp32": (TorchBackend(model), torch_weight_bytes(model)),
            "ORT fp32": (OrtBackend(fp32, threads=threads), onnx_weight_bytes(fp32)),
            "ORT INT4 (own RTN g%d)" % args.group_size: (OrtBackend(int4, threads=threads), onnx_weight_bytes(int4)),
            "ORT 20%%-pruned INT4 (removed %.1f%%)" % (100 * removed): (OrtBackend(pint4, threads=threads),
                                                                       onnx_weight_bytes(pint4)),
        }
        rates: dict[str, list[float]] = {k: [] for k in backends}
        ttfts: dict[str, list[float]] = {k: [] for k in backends}
        bws = []
        for r in range(args.rounds):
            bws.append(copy_bandwidth_GBps())
            for name, (backend, _) in backends.items():
                rate, ttft = decode_rate(backend, prompt, args.steps)
                rates[name].append(rate)
                ttfts[name].append(ttft)
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k.split(' (')[0]} {v[-1]:.1f}" for k, v in rates.items()),
                  file=sys.stderr)
    bw = max(bws)
    base = max(rates["PyTorch fp32"])
    print(f"SmolLM2-135M decode, prompt {args.prompt_len} tokens, batch 1, {threads} threads, best of {args.rounds} rounds "
          f"x {args.steps} steps; copy bandwidth {bw:.1f} GB/s (read+write, best of {len(bws)})")
    print(f"{'backend':44s} {'tok/s':>7s} {'median':>7s} {'TTFT ms':>8s} {'MB/token':>9s} {'bound tok/s':>11s} "
          f"{'of bound':>8s} {'vs PT fp32':>10s}")
    for name, (_, nbytes) in backends.items():
        best = max(rates[name])
        bound = bw * 1e9 / nbytes
        print(f"{name:44s} {best:7.1f} {statistics.median(rates[name]):7.1f} {1e3 * min(ttfts[name]):8.0f} "
              f"{nbytes / 1e6:9.1f} {bound:11.1f} {best / bound:8.0%} {best / base:9.2f}x")
    ort = max(rates["ORT fp32"])
    ort_bound = bw * 1e9 / backends["ORT fp32"][1]
    pk = [k for k in backends if "pruned" in k][0]
    print(f"target ORT fp32 >= 2x PyTorch fp32: {ort / base:.2f}x {'MET' if ort / base >= 2 else 'NOT MET'}")
    print(f"target ORT fp32 >= 70% of bound: {ort / ort_bound:.0%} {'MET' if ort / ort_bound >= 0.7 else 'NOT MET'}")
    p = max(rates[pk]) / base
    print(f"target 20%-pruned INT4 >= 2.5x dense PyTorch fp32: {p:.2f}x {'MET' if p >= 2.5 else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
