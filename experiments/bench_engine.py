"""Benchmark: our PyTorch engine against transformers on the same SmolLM2 weights, same threads.

Prints prefill tokens/s (512-token prompt, full logits) and decode tokens/s (KV cache, batch 1) for
both, their ratios (target >= 1.0), and decode speed as a fraction of the memory-bandwidth bound:
weight bytes read per token divided by this machine's measured copy bandwidth.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from clone.model.checkpoint import load_checkpoint


def copy_bandwidth_GBps(mb: int = 256, repeats: int = 5) -> float:
    """Read + write bytes per second of a large numpy copy (the bound a decode step can approach)."""
    src = np.ones(mb * 2**20 // 8)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    return 2 * src.nbytes / best / 1e9


def hf_from_ours(model) -> torch.nn.Module:
    import transformers

    c = model.config
    s = c.layers[0]
    cfg = transformers.LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.dim, intermediate_size=s.ffn_dim, num_hidden_layers=c.n_layers,
        num_attention_heads=s.n_heads, num_key_value_heads=s.n_kv_heads, head_dim=c.head_dim,
        rope_theta=c.rope_theta, rms_norm_eps=c.norm_eps, tie_word_embeddings=c.tie_embeddings,
        max_position_embeddings=c.max_seq_len)
    hf = transformers.LlamaForCausalLM(cfg).eval()
    sd = {(k if k.startswith("lm_head") else "model." + k): v for k, v in model.state_dict().items()}
    hf.load_state_dict(sd, strict=False)
    if c.tie_embeddings:
        hf.tie_weights()
    return hf


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


@torch.inference_mode()
def ours_prefill(model, tokens):
    return model(tokens)


@torch.inference_mode()
def ours_decode(model, prompt, steps):
    cache = model.new_cache(1, prompt.shape[1] + steps + 1)
    logits = model(prompt, cache=cache, last_only=True)
    t = time.perf_counter()
    for _ in range(steps):
        logits = model(logits[:, -1:].argmax(-1), cache=cache)
    return (time.perf_counter() - t) / steps


@torch.inference_mode()
def hf_decode(hf, prompt, steps):
    import transformers

    cache = transformers.DynamicCache()
    out = hf(prompt, past_key_values=cache, use_cache=True, logits_to_keep=1)
    t = time.perf_counter()
    for _ in range(steps):
        out = hf(out.logits[:, -1:].argmax(-1), past_key_values=out.past_key_values, use_cache=True)
    return (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--prompt-len", type=int, default=512)
    ap.add_argument("--decode-steps", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint("smollm2-135m")
    model = ckpt.model
    hf = hf_from_ours(model)
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(100, model.config.vocab_size, (1, args.prompt_len), generator=g)
    short = prompt[:, :128]

    p_ours = timed(lambda: ours_prefill(model, prompt), args.repeats)
    with torch.inference_mode():
        p_hf = timed(lambda: hf(prompt), args.repeats)
    d_ours = min(ours_decode(model, short, args.decode_steps) for _ in range(args.repeats))
    d_hf = min(hf_decode(hf, short, args.decode_steps) for _ in range(args.repeats))

    weight_bytes = sum(p.numel() * p.element_size() for p in {id(p): p for p in model.parameters()}.values())
    weight_bytes -= model.embed_tokens.weight.numel() * 4 if not model.config.tie_embeddings else 0
    bw = copy_bandwidth_GBps()
    bound_tps = bw * 1e9 / weight_bytes
    n = args.prompt_len
    print(f"SmolLM2-135M fp32, {args.threads} threads, prompt {n} tokens, decode after a 128-token prompt")
    print(f"{'':24}{'ours':>12}{'transformers':>14}{'ratio':>8}")
    print(f"{'prefill tokens/s':24}{n / p_ours:12.1f}{n / p_hf:14.1f}{p_hf / p_ours:8.2f}")
    print(f"{'decode tokens/s':24}{1 / d_ours:12.1f}{1 / d_hf:14.1f}{d_hf / d_ours:8.2f}")
    print(f"memory-bandwidth bound: {weight_bytes / 1e6:.0f} MB of weights per token at {bw:.1f} GB/s copy "
          f"bandwidth = {bound_tps:.1f} tokens/s; ours reaches {100 / d_ours / bound_tps:.0f}% of it, "
          f"transformers {100 / d_hf / bound_tps:.0f}%")


if __name__ == "__main__":
    main()
