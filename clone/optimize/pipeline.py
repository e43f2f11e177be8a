"""The `clone optimize` pipeline: target -> ratios (search or baseline) -> prune -> LoRA recovery ->
quantize -> save -> ONNX export -> measure -> report.

Outputs are assembled in `<out>.partial/` and renamed to `<out>` only when everything succeeded. The
search records live in `<out>.partial/search/records.csv` while the run is under way, so an
interrupted run keeps the candidates it finished and a rerun of the same command resumes from them.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from clone.errors import CloneError
from clone.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from clone.model.config import ModelConfig
from clone.model.llama import Transformer
from clone.optimize.costs import CostEvaluator, check_budget_feasible
from clone.prune.shapes import pruned_config
from clone.optimize.recipe import MAX_RATIO, Recipe
from clone.optimize.report import write_report

# Search counts of a full run, chosen for about 20 minutes on 2 CPU cores for a 135M model: exploration
# (random profiles) mostly teaches the generator the coarse landscape, so most candidates go to
# exploitation around the best baselines and to two generation rounds.
FULL_DEFAULTS = dict(n_explore=40, n_exploit=70, n_generate=10)
FAST_DEFAULTS = dict(nsamples=8, eval_tokens=1024, test_tokens=4096, n_explore=16, n_exploit=8, n_generate=4,
                     search_rounds=1, confirm_top=2, confirm_tokens=2048)
CALIB_CORPUS = "shakespeare"
Log = Callable[[str], None]


@dataclass
class OptimizeResult:
    out_dir: Path
    report: dict[str, Any]
    model: Transformer | None = None
    timings_s: dict[str, float] = field(default_factory=dict)


class Steps:
    """Times each pipeline step and prints a line when it starts."""

    def __init__(self, log: Log) -> None:
        self.log, self.timings, self._start = log, {}, time.perf_counter()

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        self.log(f"[{time.perf_counter() - self._start:6.1f} s] {name}")
        t = time.perf_counter()
        out = fn()
        self.timings[name] = round(time.perf_counter() - t, 2)
        return out

    @property
    def total_s(self) -> float:
        return round(time.perf_counter() - self._start, 1)


def effective_recipe(recipe: Recipe) -> Recipe:
    """Fill the search counts the recipe leaves open; `fast` also shrinks the search and the
    measurements so a run takes a few minutes on a laptop CPU. Values the recipe sets are kept."""
    defaults = Recipe()
    table = {**FULL_DEFAULTS, **FAST_DEFAULTS} if recipe.fast else FULL_DEFAULTS
    overrides = {k: v for k, v in table.items() if getattr(recipe, k) == getattr(defaults, k)}
    return recipe.merged(overrides)


def check_group_size(config: ModelConfig, recipe: Recipe) -> None:
    if recipe.bits >= 16 or recipe.group_size == 0 or recipe.partial_groups:
        return
    widths = {config.dim} | {config.head_dim * s.n_heads for s in config.layers if s.n_heads}
    widths |= {s.ffn_dim for s in config.layers if s.ffn_dim}
    bad = sorted(w for w in widths if w % recipe.group_size)
    if bad:
        raise CloneError(f"group_size {recipe.group_size} does not divide the input width {bad[0]} "
                         f"(allowed: 0 for per-channel, a divisor of {config.dim}, or --partial-groups)")


def derive_target(config: ModelConfig, recipe: Recipe, costs: CostEvaluator, log: Log) -> float:
    """Fraction of parameters to remove: what memory demands, and at least the paper's ~20%."""
    if recipe.target_ratio is not None:
        return recipe.target_ratio
    memory_GB = costs.weight_memory_GB(recipe.weight_memory_fraction)
    need = config.param_count() * costs.bytes_per_param(config, recipe.bits, recipe.group_size) / 1e9
    if memory_GB is None or need <= memory_GB:
        log(f"target ratio 0.20: weights ({need:.2f} GB at {recipe.bits} bits) fit the device memory "
            f"budget ({memory_GB if memory_GB is not None else 'n/a'} GB); prune for latency and energy as the paper does")
        return 0.2
    target = 1 - memory_GB / need
    if target > MAX_RATIO:
        strongest = config.param_count() * (1 - MAX_RATIO) * costs.bytes_per_param(config, 4, 128) / 1e9
        if strongest > memory_GB:
            raise CloneError(f"the model cannot fit {costs.profile_name}: {strongest:.1f} GB of weights even at "
                             f"INT4 with {MAX_RATIO:.0%} pruned, {memory_GB:.1f} GB available")
        raise CloneError(f"the model needs {target:.0%} pruning at {recipe.bits} bits to fit {costs.profile_name} "
                         f"(allowed: at most {MAX_RATIO:.0%}); use --bits 4")
    log(f"target ratio {target:.3f}: {need:.2f} GB of weights against a {memory_GB:.2f} GB budget")
    return round(target, 3)


def reference_ratios(config: ModelConfig, target: float) -> list[float]:
    from clone.prune import uniform_ratios

    try:
        return uniform_ratios(config, target) if target > 0 else [0.0] * config.n_layers
    except CloneError:
        return [target] * config.n_layers


def optimize(checkpoint: str | Path | Checkpoint, recipe: Recipe, out_dir: str | Path, *,
             log: Log = print, progress: bool = True) -> OptimizeResult:
    recipe = effective_recipe(recipe.validate())
    out = Path(out_dir)
    costs = CostEvaluator(recipe)  # validates the profile, mode and budgets before anything is written
    steps = Steps(log)
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else steps.run(
        "load checkpoint", lambda: load_checkpoint(checkpoint))
    base = ckpt.model
    check_group_size(base.config, recipe)
    target = derive_target(base.config, recipe, costs, log)
    costs.set_budgets(base.config, pruned_config(base.config, reference_ratios(base.config, target)))
    strongest = pruned_config(base.config, [MAX_RATIO] * base.config.n_layers)
    check_budget_feasible(costs, costs.predict(strongest, bits=4, group_size=128))

    work = out.parent / (out.name + ".partial")
    work.mkdir(parents=True, exist_ok=True)
    from clone.optimize.stages import Stages

    # a checkpoint loaded here is ours to prune in place; one the caller passed in is left intact
    stages = Stages(ckpt, recipe, costs, work, log, progress, consume_base=not isinstance(checkpoint, Checkpoint))
    try:
        ratios, search_info = steps.run(f"choose per-layer ratios ({recipe.method})",
                                        lambda: stages.choose_ratios(target))
        steps.run("measure the dense model", stages.dense_measures)
        model = steps.run("prune", lambda: stages.prune(ratios))
        recovery = steps.run("LoRA recovery", lambda: stages.recover(model)) if recipe.recover_steps else None
        if recipe.bits < 16:
            steps.run(f"quantize INT{recipe.bits} ({recipe.quant_method})", lambda: stages.quantize(model))
        steps.run("save model", lambda: stages.save(model, ratios, target))
        onnx_info = steps.run("export ONNX", lambda: stages.export(model)) if recipe.onnx else None
        measures = steps.run("measure perplexity, size and cost", lambda: stages.measure(model))
        report = stages.report(ratios, target, search_info, recovery, onnx_info, measures, steps.timings)
        report["time_s"] = {"steps": steps.timings, "total": steps.total_s}
        write_report(work, report)
    except KeyboardInterrupt:
        log(f"interrupted: finished candidates are kept in {work}; rerun the same command to resume")
        raise
    if out.exists():
        shutil.rmtree(out)
    work.rename(out)
    report["out_dir"] = str(out)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    log(f"done in {steps.total_s:.0f} s: {out}")
    return OptimizeResult(out, report, model, steps.timings)

