"""The steps of `clone optimize`, each a method on one object that holds what they share."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import torch

from clone.errors import CloneError
from clone.model.checkpoint import Checkpoint, save_checkpoint
from clone.model.llama import Transformer
from clone.optimize.costs import CostEvaluator
from clone.optimize.recipe import MAX_RATIO, Recipe

CALIB_CORPUS = "shakespeare"


class Stages:
    def __init__(self, ckpt: Checkpoint, recipe: Recipe, costs: CostEvaluator, work: Path,
                 log: Callable[[str], None], progress: bool, consume_base: bool = False,
                 calib: torch.Tensor | None = None, importance=None) -> None:
        """consume_base: `prune` may prune the checkpoint's model in place (the caller owns it and
        needs no dense copy afterwards). calib, importance: calibration windows and importance scores
        the caller already holds for this model and recipe (sweeps and experiments share them)."""
        self.ckpt, self.recipe, self.costs, self.work, self.log, self.progress = ckpt, recipe, costs, work, log, progress
        self.base = ckpt.model
        self.dense_config = ckpt.model.config  # kept: in-place pruning replaces base.config
        self.consume_base = consume_base
        self._calib: torch.Tensor | None = calib
        self._eval: torch.Tensor | None = None
        self._importance = importance
        self._dense: dict[str, Any] | None = None

    # -- data ---------------------------------------------------------------------------------
    @property
    def calib(self) -> torch.Tensor:
        if self._calib is None:
            from clone.data.calibration import calibration_samples

            r = self.recipe
            self._calib = calibration_samples(self.ckpt.tokenizer, CALIB_CORPUS, "train", r.nsamples, r.seq_len, r.seed)
        return self._calib

    def validation_windows(self, n_tokens: int) -> torch.Tensor:
        """`n_tokens` of the validation split as seq_len windows evenly spaced over it, flattened.
        Candidates are scored here, never on the test split the report uses."""
        from clone.data.tokens import tokenize_split
        from clone.eval.perplexity import spread_windows

        split = tokenize_split(self.ckpt.tokenizer, CALIB_CORPUS, "validation")
        return spread_windows(split, n_tokens, self.recipe.seq_len).reshape(-1)

    @property
    def eval_tokens(self) -> torch.Tensor:
        if self._eval is None:
            self._eval = self.validation_windows(self.recipe.eval_tokens)
        return self._eval

    @property
    def importance(self):
        if self._importance is None:
            from clone.prune import compute_importance

            self._importance = compute_importance(self.base, self.recipe.importance, self.calib,
                                                  seed=self.recipe.seed, progress=self.progress)
        return self._importance

    # -- ratios -------------------------------------------------------------------------------
    def pruned_config(self, ratios: list[float]):
        """Shapes of the dense model pruned with `ratios` under the recipe's attention/MLP split."""
        from clone.prune.shapes import pruned_config

        imp = self.importance if self.recipe.split == "importance" else None
        return pruned_config(self.dense_config, ratios, importance=imp)

    def removed(self, ratios: list[float]) -> float:
        """Fraction of the dense model's parameters that `ratios` removes (the search's budget)."""
        return 1 - self.pruned_config(ratios).param_count() / self.dense_config.param_count()

    def baseline(self, method: str, target: float) -> list[float]:
        from clone.prune import baseline_ratios

        return baseline_ratios(method, self.base, target, self.calib, seed=self.recipe.seed)

    def evaluate(self, ratios: list[float]) -> dict[str, float]:
        """Validation perplexity and predicted cost of one candidate, pruned layer by layer on the
        fly (`pruned_perplexity`), so no second model is built per candidate."""
        from clone.prune import pruned_perplexity

        config = self.pruned_config(ratios)
        ppl = pruned_perplexity(self.base, config, self.importance, self.eval_tokens, self.recipe.seq_len).ppl
        cost = self.costs.predict(config)
        return {"ppl": ppl, "ttft_s": cost.ttft_s, "tpot_s": cost.tpot_s, "energy_J": cost.energy_J}

    def choose_ratios(self, target: float) -> tuple[list[float], dict[str, Any]]:
        r = self.recipe
        n = self.base.config.n_layers
        if r.method == "none" or target == 0:
            return [0.0] * n, {"method": "none"}
        if r.method != "clone":
            return self.baseline(r.method, target), {"method": r.method}
        from clone.search.driver import search

        baselines = {}
        for name in ("uniform", "shortgpt", "flap", "random"):
            try:
                baselines[name] = self.baseline(name, target)
            except CloneError as exc:  # a baseline that cannot meet this target is skipped, not fatal
                self.log(f"  baseline {name} skipped: {exc}")
        _ = self.importance  # computed once, before the workers start
        res = search(n, self.removed, self.evaluate, baselines, target,
                     r.n_explore, r.n_exploit, r.n_generate, out_dir=self.work / "search", seed=r.seed,
                     workers=r.workers, fast=r.fast, budget=self.costs.budget, bounds=(0.0, 0.9 if target < 0.5 else 1.0),
                     rounds=r.search_rounds, progress=self.progress)
        table = res.table
        best, finalists = self.confirm(table)
        info: dict[str, Any] = {
            "method": "clone", "records": int(len(table)), "search_s": round(res.seconds, 1),
            "best": {k: v for k, v in best.items() if k != "ratios"}, "finalists": finalists,
            "confirm_tokens": r.confirm_tokens if r.confirm_top else 0,
            "best_collected": ({"source": res.best_collected.source, "score": res.best_collected.score,
                                "ppl": res.best_collected.ppl} if res.best_collected else None),
            "generated": [{"score": g.score, "ppl": g.ppl} for g in res.generated],
            "baselines": {},
        }
        for name, ratios in baselines.items():
            rec = table[table["source"] == f"exploit:{name}"]
            if len(rec):
                info["baselines"][name] = {"score": float(rec["score"].iloc[0]), "ppl": float(rec["ppl"].iloc[0])}
        info["baseline_ratios"] = baselines
        return best["ratios"], info

    def confirm(self, table) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The `confirm_top` best records re-scored (Eq. 1) on `confirm_tokens` validation tokens; the
        best of those is the search's answer. Why: candidates are screened on a small sample, and the
        top of hundreds of noisy scores is biased upward (winner's curse); a larger sample decides
        among the finalists. Finished re-scorings are kept in search/confirm.json (resumable)."""
        import json

        from clone.prune import pruned_perplexity
        from clone.search.records import parse_ratios
        from clone.search.score import score_metrics

        r = self.recipe
        ok = table[table["score"] > 0].sort_values(["score", "ratios"], ascending=[False, True])
        path = self.work / "search" / "confirm.json"
        done = json.loads(path.read_text()) if path.exists() else {}
        tokens = self.validation_windows(r.confirm_tokens) if r.confirm_top else None
        finalists = []
        for row in ok.head(max(1, r.confirm_top)).itertuples():
            ratios = parse_ratios(row.ratios)
            if tokens is not None and row.ratios not in done:
                done[row.ratios] = pruned_perplexity(self.base, self.pruned_config(ratios), self.importance, tokens,
                                                     r.seq_len).ppl
                path.write_text(json.dumps(done))
            ppl = done.get(row.ratios, row.ppl)
            metrics = {"ppl": ppl, "ttft_s": row.ttft_s, "tpot_s": row.tpot_s, "energy_J": row.energy_J}
            finalists.append({"source": row.source, "ratios": ratios, "screen_ppl": row.ppl, "ppl": ppl,
                              "score": score_metrics(metrics, self.costs.budget)})
        best = max(finalists, key=lambda f: f["score"])
        return best, [{k: v for k, v in f.items() if k != "ratios"} for f in finalists]

    # -- transforms ---------------------------------------------------------------------------
    def prune(self, ratios: list[float]) -> Transformer:
        """A pruned copy, or with `consume_base` the base itself pruned layer by layer (peak memory:
        one model plus one layer instead of two models; the dense figures are taken first)."""
        from clone.prune import prune_model, prune_model_inplace

        self.dense_measures()  # before the model can change (in-place pruning, or quantizing an unpruned base)
        if not any(ratios):
            return self.base
        if self.consume_base:
            return prune_model_inplace(self.base, ratios, self.importance, split=self.recipe.split)
        return prune_model(self.base, ratios, importance=self.importance, split=self.recipe.split)

    def recover(self, model: Transformer):
        from clone.lora import merge_lora, recover, save_adapter

        r = self.recipe
        res = recover(model, self.calib, steps=r.recover_steps, lr=r.recover_lr, name="recovery", seed=r.seed,
                      progress=self.progress)
        save_adapter(model, self.work / "adapters" / "recovery", "recovery")
        merge_lora(model, "recovery")
        return res

    def quantize(self, model: Transformer) -> None:
        from clone.quant import quantize_model

        r = self.recipe
        calib = self.calib if r.quant_method == "gptq" else None
        # pruned FFN widths need not be multiples of the group: the last group of a row is shorter
        # (the dense widths were checked against the group size before anything ran)
        quantize_model(model, bits=r.bits, group_size=r.group_size or None, symmetric=r.symmetric,
                       method=r.quant_method, calib=calib, partial_groups=True, progress=self.progress)

    def save(self, model: Transformer, ratios: list[float], target: float) -> None:
        meta = {"optimized_from": self.ckpt.source, "profile": self.costs.profile_name,
                "ratios": ratios, "target_ratio": target, "recipe": self.recipe.to_dict()}
        tmp = save_checkpoint(model, self.ckpt.tokenizer, self.work / "model", metadata=meta)
        for item in tmp.iterdir():  # the model files sit at the top of the output directory
            dest = self.work / item.name
            if dest.exists():
                dest.unlink()
            item.rename(dest)
        tmp.rmdir()

    def export(self, model: Transformer) -> dict[str, Any]:
        from clone.export.onnx import export_onnx, tolerance_for, verify_onnx
        from clone.model.swap import weights_swapped_out

        info = export_onnx(model, self.work / "model.onnx")
        probe = self.ckpt.tokenizer.encode("Shall I compare thee to a summer's day?")
        # the model's weights wait on disk while onnxruntime holds the exported copy (peak: one copy)
        diff = verify_onnx(model, info.path, probe, decode_steps=4,
                           release=lambda: weights_swapped_out(model, self.work))
        tol = tolerance_for(info.path)
        if not diff <= tol:
            raise CloneError(f"ONNX export does not match PyTorch: max |logit diff| {diff:.3g} > tolerance {tol:.3g}")
        return {"file": info.path.name, "bytes": info.bytes_on_disk, "matmul_nbits": info.n_matmul_nbits,
                "matmul_float": info.n_matmul_float, "max_abs_logit_diff": diff, "tolerance": tol}

    # -- measurement --------------------------------------------------------------------------
    def test_perplexity(self, model: Transformer):
        """The report's protocol: Shakespeare test split, `test_tokens` (0 = all) as 512-token windows
        evenly spaced over the split (the benchmark scores its baselines with this too)."""
        from clone.eval.perplexity import perplexity

        return perplexity(model, self.ckpt.tokenizer, corpus=CALIB_CORPUS, split="test", seq_len=512,
                          max_tokens=self.recipe.test_tokens or None, progress=self.progress, spread=True)

    def dense_measures(self) -> dict[str, Any]:
        """Figures of the dense model, taken once and before any in-place pruning."""
        if self._dense is None:
            from clone.quant import model_nbytes

            self._dense = {"ppl": self.test_perplexity(self.base).ppl, "params": self.base.config.param_count(),
                           "bytes": model_nbytes(self.base)}
        return self._dense

    def measure(self, model: Transformer) -> dict[str, Any]:
        from clone.quant import model_nbytes

        dense = self.dense_measures()
        opt = self.test_perplexity(model)
        return {
            "perplexity": {"dense": dense["ppl"], "optimized": opt.ppl, "protocol": opt.protocol()},
            "params": {"dense": dense["params"], "optimized": model.config.param_count()},
            "bytes": {"dense_fp32": dense["bytes"], "dense_fp16": dense["params"] * 2,
                      "optimized": model_nbytes(model), "optimized_fp16_rest": deployed_bytes(model)},
            "predicted": {"dense_fp16": self.costs.dense.as_dict(),
                          "optimized": self.costs.predict(model.config).as_dict()},
            "shapes": [s.__dict__ for s in model.config.layers],
        }

    def report(self, ratios, target, search_info, recovery, onnx_info, measures, timings) -> dict[str, Any]:
        rec = None
        if recovery is not None:
            rec = {"steps": recovery.steps, "first_loss": recovery.first_loss, "last_loss": recovery.last_loss,
                   "trainable_params": recovery.trainable_params}
        return {
            "checkpoint": self.ckpt.source,
            "target": {**self.costs.describe(), "target_ratio": target,
                       "removed_fraction": self.removed(ratios)},
            "recipe": self.recipe.to_dict(),
            "ratios": ratios,
            "search": search_info,
            "recovery": rec,
            "onnx": onnx_info,
            **measures,
        }


def deployed_bytes(model: Transformer) -> int:
    """Bytes as deployed on a board: packed low-bit weights plus every float tensor in fp16."""
    from clone.quant import model_nbytes

    fp32 = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values() if p.dtype == torch.float32)
    return model_nbytes(model) - 2 * fp32


def finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


__all__ = ["Stages", "MAX_RATIO"]
