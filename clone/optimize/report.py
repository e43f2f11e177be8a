"""report.md, report.json and the per-layer ratio plot of an optimized model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def plot_ratios(path: Path, ratios: list[float], baselines: dict[str, list[float]] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2))
    layers = list(range(len(ratios)))
    ax.bar(layers, ratios, color="#3b6ea8", label="chosen")
    for name, values in (baselines or {}).items():
        if name in ("uniform", "flap"):
            ax.plot(layers, values, marker=".", linewidth=1, label=name)
    ax.set_xlabel("decoder layer")
    ax.set_ylabel("fraction of layer parameters removed")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("per-layer pruning ratios")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mb(x: float) -> str:
    return f"{x / 2**20:.1f} MiB"


def markdown(r: dict[str, Any]) -> str:
    t, p, b = r["target"], r["perplexity"], r["bytes"]
    pd_, po = r["predicted"]["dense_fp16"], r["predicted"]["optimized"]
    budget = t["budget"]
    lines = [
        f"# clone optimize report: {r['checkpoint']} for {t['profile']}",
        "",
        f"- method: **{r['recipe']['method']}**, target {t['target_ratio']:.3f} of parameters removed "
        f"(achieved {t['removed_fraction']:.3f}); weights {r['recipe']['bits']}-bit"
        + (f", group {r['recipe']['group_size']}, {r['recipe']['quant_method']}" if r['recipe']['bits'] < 16 else ""),
        f"- profile {t['profile']}, mode {t['mode']}, clocks {t['clocks']}, cost model {t['cost_model']}",
        f"- workload {t['workload']['prompt_tokens']} prompt + {t['workload']['output_tokens']} output tokens; "
        f"budgets TTFT {budget['ttft_ms']} ms, TPOT {budget['tpot_ms']} ms, energy {budget['energy_J']:.3g} J "
        f"(application class {t['app_class']})",
        "",
        "| | dense | optimized | ratio |",
        "|---|---|---|---|",
        f"| parameters | {r['params']['dense']:,} | {r['params']['optimized']:,} | "
        f"{r['params']['optimized'] / r['params']['dense']:.3f} |",
        f"| weight bytes as deployed (fp16 + packed low-bit) | {_mb(b['dense_fp16'])} | "
        f"{_mb(b['optimized_fp16_rest'])} | {b['optimized_fp16_rest'] / b['dense_fp16']:.3f} |",
        f"| weight bytes as stored here (fp32 + packed) | {_mb(b['dense_fp32'])} | {_mb(b['optimized'])} | "
        f"{b['optimized'] / b['dense_fp32']:.3f} |",
        f"| perplexity | {p['dense']:.2f} | {p['optimized']:.2f} | {p['optimized'] / p['dense']:.3f} |",
        f"| predicted TTFT | {pd_['ttft_ms']:.1f} ms | {po['ttft_ms']:.1f} ms | {po['ttft_ms'] / pd_['ttft_ms']:.3f} |",
        f"| predicted TPOT | {pd_['tpot_ms']:.2f} ms | {po['tpot_ms']:.2f} ms | {po['tpot_ms'] / pd_['tpot_ms']:.3f} |",
        f"| predicted energy / request | {pd_['energy_J']:.3f} J | {po['energy_J']:.3f} J | "
        f"{po['energy_J'] / pd_['energy_J']:.3f} |",
        "",
        f"Perplexity protocol: {p['protocol']}. Dense is the checkpoint as loaded (fp32); predictions are for "
        "fp16 dense weights against the optimized storage format.",
        "",
    ]
    s = r.get("search") or {}
    if s.get("method") == "clone":
        lines += ["## Search", "",
                  f"{s['records']} candidates evaluated in {s['search_s']} s (scored on the validation split). "
                  f"Best: {s['best']['source']}, score {s['best']['score']:.4g}, perplexity {s['best']['ppl']:.2f} "
                  f"(re-scored on {s.get('confirm_tokens', 0):,} validation tokens among the "
                  f"{len(s.get('finalists', []))} best records; screening perplexity {s['best']['screen_ppl']:.2f}).", ""]
        if s.get("baselines"):
            lines += ["| candidate | Eq. 1 score | validation perplexity (screening) |", "|---|---|---|"]
            lines += [f"| {k} | {v['score']:.4g} | {v['ppl']:.2f} |" for k, v in s["baselines"].items()]
            lines += [f"| searched best | | {s['best']['screen_ppl']:.2f} |", ""]
    if r.get("recovery"):
        rc = r["recovery"]
        lines += ["## LoRA recovery", "",
                  f"{rc['steps']} steps, {rc['trainable_params']:,} trainable parameters; training loss "
                  f"{rc['first_loss']:.3f} -> {rc['last_loss']:.3f}. Adapter in adapters/recovery (merged into the "
                  "saved weights).", ""]
    if r.get("onnx"):
        o = r["onnx"]
        lines += ["## ONNX", "",
                  f"{o['file']}: {_mb(o['bytes'])}, {o['matmul_nbits']} MatMulNBits and {o['matmul_float']} float "
                  f"MatMuls; onnxruntime vs PyTorch max |logit diff| {o['max_abs_logit_diff']:.2e} "
                  f"(tolerance {o['tolerance']:.0e}, prefill + 4 decode steps through the KV-cache inputs).", ""]
    lines += ["## Per-layer ratios and shapes", "", "![ratios](ratios.png)", "",
              "| layer | ratio | heads | KV heads | FFN |", "|---|---|---|---|---|"]
    for i, (ratio, shape) in enumerate(zip(r["ratios"], r["shapes"])):
        lines.append(f"| {i} | {ratio:.3f} | {shape['n_heads']} | {shape['n_kv_heads']} | {shape['ffn_dim']} |")
    ts = r.get("time_s", {})
    lines += ["", "## Time", "", f"total {ts.get('total', 0):.0f} s: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in ts.get("steps", {}).items()), ""]
    return "\n".join(lines)


def write_report(directory: Path, report: dict[str, Any]) -> None:
    search = report.get("search") or {}
    plot_ratios(directory / "ratios.png", report["ratios"], search.get("baseline_ratios"))
    (directory / "report.json").write_text(json.dumps(report, indent=1, default=float))
    (directory / "report.md").write_text(markdown(report))
