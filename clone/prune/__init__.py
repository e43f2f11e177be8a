"""Structured pruning of whole KV groups and FFN channels, importance scores and baseline ratio vectors.

    scores = compute_importance(model, "taylor", calib)          # once per base model
    ratios = uniform_ratios(model.config, target=0.2)            # or a searched vector
    small = prune_model(model, ratios, importance=scores)        # a new, smaller Transformer
"""

from clone.prune.baselines import (
    BASELINES,
    baseline_ratios,
    block_influence,
    flap_ratios,
    flap_config,
    fluctuation_channels,
    random_ratios,
    shortgpt_ratios,
    uniform_ratios,
)
from clone.prune.importance import METHODS, Importance, LayerScores, compute_importance
from clone.prune.pruner import prune_layer, prune_model, prune_model_inplace, prune_to_config
from clone.prune.evaluate import pruned_perplexity
from clone.prune.shapes import params_removed, pruned_config, removed_fraction, shape_for_ratio

__all__ = [
    "BASELINES", "METHODS", "Importance", "LayerScores", "baseline_ratios", "block_influence",
    "compute_importance", "flap_ratios", "flap_config", "fluctuation_channels", "params_removed", "prune_layer", "prune_model", "prune_model_inplace",
    "pruned_perplexity",
    "prune_to_config", "pruned_config", "random_ratios", "removed_fraction", "shape_for_ratio",
    "shortgpt_ratios", "uniform_ratios",
]
