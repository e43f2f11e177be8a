"""Perplexity, latency and energy of the embedded model pruned to a global ratio by one method (the
paper's Figure 13 shape). Latency and energy are the cost model's prediction for the pruned shape
(fp16) on a profile; perplexity is measured.

Methods (ratios = which layer loses how much; importance = which heads/channels go inside a layer):

| method | ratios | importance |
|---|---|---|
| dense | none (ratio 0) | - |
| clone | the optimizer's generative search (clone.optimize.stages, small budget, finalists re-scored) | Taylor |
| uniform | LLM-Pruner: layers 0-2 and the last exempt, one ratio elsewhere | Taylor |
| random | Dirichlet ratios (seeded) | random (seeded): the paper's random-pruning baseline |
| shortgpt | whole layers in increasing block influence | - |
| flap | FLAP: standardised fluctuation, global ranking, its own attention/MLP split | fluctuation |

`layer_split` (clone, uniform, random): `balanced` cuts a layer's attention and MLP at one fraction
(docs/compression.md); `importance` ranks KV groups and FFN channels together by importance per
parameter (clone.prune.shapes.shape_by_importance), as `clone optimize` does by default. Calibration
windows come from the Shakespeare train split (as in `clone optimize`); the search scores candidates
on the validation split; the table's perplexity is on `corpus`/`split`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from clone.sweep.kinds import _common as c
from clone.sweep.kinds import _model as m
from clone.sweep.kinds.base import Kind, Param, PointContext, PointError

METHODS = ("dense", "clone", "uniform", "random", "shortgpt", "flap")
PARAMS = {
    "model": Param(str, "smollm2-135m"),
    "method": Param(str, choices=METHODS),
    "ratio": Param(float, doc="fraction of all parameters removed (embeddings included); 0 for dense"),
    "layer_split": Param(str, "balanced", choices=("balanced", "importance"),
                         doc="how a layer's ratio divides between KV groups and FFN channels (clone, uniform, random)"),
    "profile": Param(str, "jetson-orin-nano-8gb", doc="where latency and energy are predicted"),
    "mode": Param(str, None),
    "prompt_tokens": Param(int, 128),
    "output_tokens": Param(int, 128),
    "corpus": Param(str, "shakespeare"),
    "split": Param(str, "test"),
    "seq_len": Param(int, 256),
    "max_tokens": Param(int, 2048, doc="first N tokens of the split (0 = all)"),
    "calib_samples": Param(int, 32),
    "calib_seq_len": Param(int, 128),
    "seed": Param(int, 0),
    "search_explore": Param(int, 16),
    "search_exploit": Param(int, 8),
    "search_generate": Param(int, 4),
    "search_eval_tokens": Param(int, 1024, doc="validation tokens scoring each search candidate"),
    "search_rounds": Param(int, 2, doc="generate-and-evaluate rounds of the search"),
    "search_confirm_top": Param(int, 3, doc="best candidates re-scored on search_confirm_tokens (0 = off)"),
    "search_confirm_tokens": Param(int, 4096, doc="validation tokens re-scoring each finalist"),
}
RESULTS = ("ppl", "removed_fraction", "params", "layers_removed", "ttft_s", "tpot_s", "energy_J",
           "search_records", "search_best_source", "ratios")


def prepare(p: dict[str, Any]) -> dict[str, Any]:
    from clone.optimize.recipe import MAX_RATIO

    m.check_checkpoint(p["model"])
    prof = c.check_profile(p["profile"], kinds=("board", "accelerator"))
    p["mode"] = c.check_mode(prof, p["mode"]) if prof.kind == "board" else p["mode"]
    if p["method"] == "dense":
        if p["ratio"] != 0:
            raise PointError("ratio", f"{p['ratio']:g}: the dense model removes nothing", "0")
    elif not 0 < p["ratio"] <= MAX_RATIO:
        raise PointError("ratio", f"{p['ratio']:g} is outside (0, {MAX_RATIO}] for method {p['method']}")
    m.check_protocol(p)
    c.positive(p, "prompt_tokens", "output_tokens", "search_eval_tokens", "search_rounds", "search_confirm_tokens")
    for key in ("search_explore", "search_exploit", "search_generate", "search_confirm_top"):
        if p[key] < 0:
            raise PointError(key, f"{p[key]} must be >= 0")
    if p["method"] == "clone" and p["search_eval_tokens"] <= p["calib_seq_len"]:
        raise PointError("search_eval_tokens", f"{p['search_eval_tokens']} must exceed calib_seq_len {p['calib_seq_len']}")
    return p


def _recipe(p: dict[str, Any]) -> Any:
    from clone.optimize.recipe import Recipe

    return Recipe(profile=p["profile"], mode=p["mode"], method="clone", target_ratio=p["ratio"] or None,
                  importance="taylor", split=p["layer_split"], nsamples=p["calib_samples"], seq_len=p["calib_seq_len"],
                  seed=p["seed"], prompt_tokens=p["prompt_tokens"], output_tokens=p["output_tokens"],
                  eval_tokens=max(p["search_eval_tokens"], p["calib_seq_len"] + 1), n_explore=p["search_explore"],
                  n_exploit=p["search_exploit"], n_generate=p["search_generate"], search_rounds=p["search_rounds"],
                  confirm_top=p["search_confirm_top"], confirm_tokens=p["search_confirm_tokens"], workers=1,
                  fast=True, onnx=False)


@lru_cache(maxsize=4)
def _costs(profile: str, mode: str | None, prompt_tokens: int, output_tokens: int) -> Any:
    from clone.optimize.costs import CostEvaluator
    from clone.optimize.recipe import Recipe

    return CostEvaluator(Recipe(profile=profile, mode=mode, prompt_tokens=prompt_tokens, output_tokens=output_tokens))


def _stats(p: dict[str, Any]) -> tuple:
    return p["model"], p["calib_samples"], p["calib_seq_len"], p["seed"]


def baseline(method: str, target: float, p: dict[str, Any]) -> list[float]:
    """The ratio generators of clone.prune.baselines on this process's cached statistics."""
    from clone.prune.baselines import flap_ratios, random_ratios, shortgpt_ratios, uniform_ratios

    config = m.checkpoint(p["model"]).model.config
    if method == "uniform":
        return uniform_ratios(config, target)
    if method == "random":
        return random_ratios(config, target, seed=p["seed"])
    if method == "shortgpt":
        return shortgpt_ratios(config, m.block_influence(*_stats(p)), target)
    return flap_ratios(config, m.fluctuation(*_stats(p)), target)


def _search(p: dict[str, Any], ctx: PointContext) -> tuple[list[float], dict[str, Any]]:
    """The optimizer's own search step (Stages.choose_ratios), with this process's cached
    calibration, Taylor scores and baseline statistics; its records live in the point's work dir."""
    from clone.optimize.costs import CostEvaluator
    from clone.optimize.pipeline import reference_ratios
    from clone.optimize.stages import Stages
    from clone.prune.shapes import pruned_config

    recipe = _recipe(p).validate("sweep point")
    ckpt = m.checkpoint(p["model"])
    costs = CostEvaluator(recipe)
    costs.set_budgets(ckpt.model.config, pruned_config(ckpt.model.config, reference_ratios(ckpt.model.config, p["ratio"])))
    ctx.work_dir.mkdir(parents=True, exist_ok=True)
    stages = Stages(ckpt, recipe, costs, ctx.work_dir, log=lambda msg: None, progress=False,
                    calib=m.calib(*_stats(p)), importance=m.importance(p["model"], "taylor", *_stats(p)[1:]))
    stages.baseline = lambda method, target: baseline(method, target, p)  # cached statistics
    return stages.choose_ratios(p["ratio"])


def _shape(base: Any, ratios: list[float], scores: Any, split: str) -> Any:
    """The pruned config for `ratios`: the balanced rule, or each layer's split by importance."""
    from clone.prune.shapes import pruned_config

    if split == "importance":
        return pruned_config(base.config, ratios, importance=scores)
    return pruned_config(base.config, ratios)


def _prune(p: dict[str, Any], ctx: PointContext) -> tuple[Any, list[float], dict[str, Any]]:
    from clone.prune.baselines import flap_config
    from clone.prune.pruner import prune_to_config

    base = m.checkpoint(p["model"]).model
    method, stats = p["method"], _stats(p)
    if method == "dense":
        return base, [0.0] * base.config.n_layers, {}
    if method == "flap":
        config = flap_config(base.config, m.fluctuation(*stats), p["ratio"])
        net = prune_to_config(base, config, m.importance(p["model"], "fluctuation", *stats[1:]))
        ratios = [1.0 - config.layer_params(b) / base.config.layer_params(a) for a, b in
                  zip(base.config.layers, config.layers)]
        return net, ratios, {}
    info: dict[str, Any] = {}
    if method == "clone":
        ratios, info = _search(p, ctx)
    else:
        ratios = baseline(method, p["ratio"], p)
    scores = m.importance(p["model"], "random" if method == "random" else "taylor", *stats[1:])
    return prune_to_config(base, _shape(base, ratios, scores, p["layer_split"]), scores), ratios, info


def run(p: dict[str, Any], ctx: PointContext) -> dict[str, Any]:
    base = m.checkpoint(p["model"]).model
    net, ratios, info = _prune(p, ctx)
    cost = _costs(p["profile"], p["mode"], p["prompt_tokens"], p["output_tokens"]).predict(net.config, bits=16)
    return {"ppl": m.perplexity(net, p["model"], p), "removed_fraction": 1 - net.param_count() / base.param_count(),
            "params": net.param_count(), "layers_removed": sum(1 for s in net.config.layers
                                                               if not s.n_heads and not s.ffn_dim),
            "ttft_s": cost.ttft_s, "tpot_s": cost.tpot_s, "energy_J": cost.energy_J,
            "search_records": info.get("records", 0), "search_best_source": (info.get("best") or {}).get("source", ""),
            "ratios": ";".join(f"{r:.3f}" for r in ratios)}


KIND = Kind("pruning", PARAMS, RESULTS, run, plots=("pruning",), prepare=prepare, doc=__doc__ or "")
