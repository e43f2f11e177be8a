"""Mixture of LoRA experts on SmolLM2: per-domain held-out and mixed-domain perplexity with the base
model, each domain's own expert, soft mixture, top-1 and uniform averaging; routing cost vs prefill.

    .venv/bin/python experiments/bench_experts.py [--model smollm2-135m] [--steps 100] [--windows 12]
        [--out DIR [--reuse]]

Routing is per request: weights come from the request's own window (its prompt) once and are used
for the whole window. Mixed requests are windows whose first half is one domain and second half another.
The router's chunking and temperature are calibrated on the validation split (clone.experts.calibrate)
and written to DIR/router.json; every perplexity below is on the test split.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time

import torch

from clone.data.calibration import calibration_samples
from clone.experts import Router, RouterConfig, calibrate, load_experts, mixed_windows, routing_weights, train_experts, validation_sets
from clone.experts.embedding import embed_tokens
from clone.lora import lm_loss, remove_lora, set_mix
from clone.model.checkpoint import load_checkpoint

DOMAINS = ["shakespeare", "bible", "fortunes", "techprose"]
MODES = ("soft", "top1", "uniform")


@torch.no_grad()
def ppl(model, windows, weights: dict | None = None, router: Router | None = None) -> float:
    if router is not None:
        router.route(windows)
    else:
        set_mix(model, weights or {})
    return math.exp(float(lm_loss(model, windows)))


def geo(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def single_table(model, names, test, routers) -> None:
    print("\n| held-out (test) | base | own expert | soft | top-1 | uniform | soft weight on own |")
    print("|---|---|---|---|---|---|---|")
    for d, w in test.items():
        r = {m: ppl(model, w, router=routers[m]) for m in MODES}
        wo = float(routers["soft"].last_weights[:, names.index(d)].mean())
        print(f"| {d} | {ppl(model, w):.2f} | {ppl(model, w, {d: 1.0}):.2f} | {r['soft']:.2f} | {r['top1']:.2f} | "
              f"{r['uniform']:.2f} | {wo:.2f} |")


def mixed_sets(test) -> dict[tuple[str, str], torch.Tensor]:
    return {(a, b): mixed_windows(test[a], test[b]) for i, a in enumerate(DOMAINS) for b in DOMAINS[i + 1:]}


def mixed_table(model, names, mixed, routers) -> None:
    print("\n| mixed request (A then B) | base | soft | top-1 | uniform | oracle 50/50 of A,B | soft weight on A+B |")
    print("|---|---|---|---|---|---|---|")
    cols = {k: [] for k in ("base", *MODES, "pair")}
    for (a, b), w in mixed.items():
        r = {"base": ppl(model, w), **{m: ppl(model, w, router=routers[m]) for m in MODES},
             "pair": ppl(model, w, {a: 0.5, b: 0.5})}
        on = float(routers["soft"].last_weights[:, [names.index(a), names.index(b)]].sum(1).mean())
        for k, v in r.items():
            cols[k].append(v)
        print(f"| {a}+{b} | {r['base']:.2f} | {r['soft']:.2f} | {r['top1']:.2f} | {r['uniform']:.2f} | "
              f"{r['pair']:.2f} | {on:.2f} |")
    g = {k: geo(v) for k, v in cols.items()}
    print(f"| geometric mean | {g['base']:.2f} | {g['soft']:.2f} | {g['top1']:.2f} | {g['uniform']:.2f} | "
          f"{g['pair']:.2f} | |")
    wins = sum(s < u for s, u in zip(cols["soft"], cols["uniform"]))
    print(f"soft beats uniform on {wins} of {len(cols['soft'])} pairs, top-1 on "
          f"{sum(s <= t for s, t in zip(cols['soft'], cols['top1']))} of {len(cols['soft'])}")


def ablation(model, test, mixed, soft: Router, cfg) -> None:
    """Each chunking with its own best validation tau, and the uniform limit, on test."""
    print("\n| router setting (tau: best on validation for that chunking) | validation objective | "
          "test single-domain geo-mean | test mixed geo-mean |")
    print("|---|---|---|---|")
    chosen = (soft.chunk, soft.tau)
    for chunk in sorted({r["chunk"] for r in cfg.scores}):
        tau = cfg.best_for_chunk(chunk)
        val = min(r["nll"] for r in cfg.scores if r["chunk"] == chunk)
        soft.chunk, soft.tau = chunk, tau
        s = geo([ppl(model, w, router=soft) for w in test.values()])
        m = geo([ppl(model, w, router=soft) for w in mixed.values()])
        name = "whole prompt" if chunk == 0 else f"chunks of {chunk} tokens"
        print(f"| {name}, tau {tau:g} | {val:.4f} | {s:.2f} | {m:.2f} |")
    soft.chunk, soft.tau = chosen


def routing_cost(model, es, soft: Router, x) -> None:
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
        routing_weights(emb, es.embeddings(), "soft", soft.tau, soft.center)
    score = (time.perf_counter() - t) / 100
    print(f"\nrouting cost per request ({x.shape[1]}-token prompt, {torch.get_num_threads()} threads): "
          f"separate router pass (base model to layer {es.layer + 1} of {len(model.layers)}) {route * 1e3:.1f} ms = "
          f"{route / prefill:.2f}x the prefill ({prefill * 1e3:.1f} ms); scoring alone from hidden states "
          f"{score * 1e3:.3f} ms = {score / prefill:.4f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--windows", type=int, default=12, help="held-out windows per domain / mixed pair")
    ap.add_argument("--val-windows", type=int, default=8, help="validation windows per domain / pair")
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
    L = args.seq_len + 1
    soft = Router(model, es, "soft", prefix=args.seq_len)
    cfg = RouterConfig.load(out)
    if args.reuse and cfg.calibrated and cfg.prefix == args.seq_len:  # calibrated by clone train-experts
        soft.chunk, soft.tau = cfg.chunk, cfg.tau
        print(f"router from {out}/router.json: chunk {soft.chunk} (0 = whole prompt), tau {soft.tau:g}, by {cfg.objective}")
    else:
        t0 = time.perf_counter()
        cfg = calibrate(soft, validation_sets(tok, DOMAINS, args.val_windows, L))
        cfg.save(out)
        print(f"router: chunk {soft.chunk} (0 = whole prompt), tau {soft.tau:g}, chosen on validation in "
              f"{time.perf_counter() - t0:.0f} s by {cfg.objective}")
    print("validation objective per grid point: " + ", ".join(
        f"chunk {r['chunk']} tau {r['tau']:g}: {r['nll']:.4f}" for r in cfg.scores))
    routers = {"soft": soft, **{m: Router(model, es, m, soft.tau, args.seq_len, soft.chunk) for m in MODES[1:]}}
    test = {d: calibration_samples(tok, d, "test", args.windows, L, 11) for d in DOMAINS}
    mixed = mixed_sets(test)
    single_table(model, es.names, test, routers)
    mixed_table(model, es.names, mixed, routers)
    ablation(model, test, mixed, soft, cfg)
    routing_cost(model, es, soft, test["techprose"][:1, :args.seq_len])


if __name__ == "__main__":
    main()
