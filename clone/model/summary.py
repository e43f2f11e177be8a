"""Human-readable architecture summary: parameters, bytes per precision and per-layer shapes."""

from __future__ import annotations

from clone.model.config import ModelConfig

# Bytes per weight for the precisions users deploy; INT4/INT8 include one fp16 scale (+ zero) per
# group of 128 weights, as group-wise quantizers store them.
BYTES_PER_PARAM = {"fp32": 4.0, "fp16/bf16": 2.0, "int8-g128": 1.0 + 4 / 128, "int4-g128": 0.5 + 4 / 128}


def layer_runs(config: ModelConfig) -> list[tuple[int, int, str]]:
    """Consecutive layers with the same shape, as (first, last, description)."""
    runs: list[tuple[int, int, str]] = []
    for i, s in enumerate(config.layers):
        desc = f"heads {s.n_heads:>3} / kv {s.n_kv_heads:>2}, ffn {s.ffn_dim:>6}"
        if runs and runs[-1][2] == desc and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i, desc)
        else:
            runs.append((i, i, desc))
    return runs


def summary_lines(config: ModelConfig, params: int | None = None) -> list[str]:
    params = params if params is not None else config.param_count()
    lines = [
        f"name            {config.name or '-'}",
        f"architecture    {config.arch} decoder, {config.n_layers} layers, hidden {config.dim}, head_dim {config.head_dim}",
        f"vocabulary      {config.vocab_size}, embeddings {'tied' if config.tie_embeddings else 'untied'}"
        f"{', q/k/v bias' if config.qkv_bias else ''}",
        f"rope            theta {config.rope_theta:g}{', scaling ' + str(config.rope_scaling) if config.rope_scaling else ''}"
        f", context {config.max_seq_len}",
        f"parameters      {params:,} ({params / 1e6:.1f} M)",
        "weight bytes    " + ", ".join(f"{k} {params * b / 2**20:.0f} MiB" for k, b in BYTES_PER_PARAM.items()),
        "layers:",
    ]
    for first, last, desc in layer_runs(config):
        span = f"{first}" if first == last else f"{first}-{last}"
        lines.append(f"  {span:>7}  {desc}")
    return lines
