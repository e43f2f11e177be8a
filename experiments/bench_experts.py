"""Mixture of LoRA experts on SmolLM2: per-domain held-out and mixed-domain perplexity with the base
model, each domain's own expert, soft mixture, top-1 and uniform averaging; routing cost vs prefill.

    .venv/bin/python experiments/bench_experts.py [--model smollm2-135m] [--steps 100] [--windows 12]

Routing is per request: weights come from the request's own window (its prompt) once and are used
for the whole window. Mixed requests are windows whose first half is one domain and second half another.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import torch
import torch.nn.functional as F

from clone.data.calibration import calibration_samples
from clone.experts import Router, load_experts, train_experts
from clone.experts.embedding import embed_tokens
from clone.experts.router import calibrate_temperature
from clone.lora import remove_lora, set_mix
from clone.model.checkpoint import load_checkpoint

DOMAINS = ["shakespeare", "bible", "fortunes", "techprose"]


@torch.no_grad()
def nll_per_request(model, windows):
    logits = model(windows[:, :-1])
    return F.cross_entropy(logits.transpose(1, 2).float(), windows[:, 1:], reduction="none").mean(1)


@torch.no_grad()
def ppl(model, windows, weights: dict | None, router: Router | None = None):
    if router is not None:
        router.route(windows)
    else:
        set_mix(model, weights or {})
    return math.exp(float(nll_per_request(model, windows).mean()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--windows", type=int, default=12, help="held-out windows per domain / mixed pair")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--out", default=None)
    ap.add_argument("--reuse", action="store_true", help="evaluate the experts already in --out")
    args = ap.parse_args()
    torch.manual_seed(0)
    ck = load_checkpoint(args.model)
    model, tok = ck.model.eval(), ck.tokenizer
    out = args.out or tempfile.mkdtemp(prefix="experts-")
    if not args.reuse:
        t0 = time.perf_counter()
        train_experts(model, tok, out, DOMAINS, args.steps)
        print(f"trained {len(DOMAINS)} experts x {args.steps} steps (4 x 128 tokens) in {time.perf_counter() - t0:.0f} s")
        remove_lora(model)
    es = load_experts(model, out)  # the saved set, as a user would load it (adapters re-attached)
    names = es.names
    L = args.seq_len + 1
    test = {d: calibration_samples(tok, d, "test", args.windows, L, 11) for d in DOMAINS}
    val = {d: calibration_samples(tok, d, "validation", 8, args.seq_len, 12) for d in DOMAINS}
    soft = Router(model, es, "soft", prefix=args.seq_len)
    tau = calibrate_temperature(soft, val)
    top1 = Router(model, es, "top1", prefix=args.seq_len)
    uni = Router(model, es, "uniform", prefix=args.seq_len)
    print(f"temperature {tau} (calibrated on validation windows: mean weight on the right expert >= 0.9)")

    print("\n| held-out (test) | base | own expert | soft | top-1 | uniform | soft weight on own |")
    print("|---|---|---|---|---|---|---|")
    for d in DOMAINS:
        w = test[d]
        base, own = ppl(model, w, {}), ppl(model, w, {d: 1.0})
        s, t, u = ppl(model, w, None, soft), ppl(model, w, None, top1), ppl(model, w, None, uni)
        wo = float(soft.last_weights[:, names.index(d)].mean())
        print(f"| {d} | {base:.2f} | {own:.2f} | {s:.2f} | {t:.2f} | {u:.2f} | {wo:.2f} |")

    half = L // 2
    print("\n| mixed request (A then B) | base | soft | top-1 | uniform | oracle 50/50 of A,B |")
    print("|---|---|---|---|---|---|")
    tot = {k: [] for k in ("base", "soft", "top1", "uniform", "pair")}
    for i, a in enumerate(DOMAINS):
        for b in DOMAINS[i + 1:]:
            w = torch.cat([test[a][:, :half], test[b][:, half:]], dim=1)
            r = {"base": ppl(model, w, {}), "soft": ppl(model, w, None, soft), "top1": ppl(model, w, None, top1),
                 "uniform": ppl(model, w, None, uni), "pair": ppl(model, w, {a: 0.5, b: 0.5})}
            for k, v in r.items():
                tot[k].append(math.log(v))
            print(f"| {a}+{b} | {r['base']:.2f} | {r['soft']:.2f} | {r['top1']:.2f} | {r['uniform']:.2f} | {r['pair']:.2f} |")
    g = {k: math.exp(sum(v) / len(v)) for k, v in tot.items()}
    print(f"| geometric mean | {g['base']:.2f} | {g['soft']:.2f} | {g['top1']:.2f} | {g['uniform']:.2f} | {g['pair']:.2f} |")

    x = test["techprose"][:1, :args.seq_len]
    set_mix(model, {})
    reps = 5
    t = time.perf_counter()
    for _ in range(reps):
        with torch.no_grad():
            model(x, last_only=True)
    prefill = (time.perf_counter() - t) / reps
    t = time.perf_counter()
    for _ in range(reps):
        soft.route(x)
    route = (time.perf_counter() - t) / reps
    emb = embed_tokens(model, x, es.layer)
    t = time.perf_counter()
    for _ in range(100):
        from clone.experts.router import routing_weights
        routing_weights(emb, es.embeddings(), "soft", tau, soft.center)
    score = (time.perf_counter() - t) / 100
    print(f"\nrouting cost per request ({args.seq_len}-token prompt, {torch.get_num_threads()} threads): "
          f"separate router pass (base model to layer {es.layer + 1} of {len(model.layers)}) {route * 1e3:.1f} ms = "
          f"{route / prefill:.2f}x the prefill ({prefill * 1e3:.1f} ms); scoring alone from hidden states "
          f"{score * 1e3:.3f} ms = {score / prefill:.4f}x")


if __name__ == "__main__":
    main()
