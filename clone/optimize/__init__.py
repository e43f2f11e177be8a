"""`clone optimize`: tailor a checkpoint to an edge profile (search, prune, recover, quantize, export).

    from clone.optimize import Recipe, optimize
    result = optimize("smollm2-135m", Recipe(profile="jetson-orin-nano-8gb", fast=True), out_dir="out/nano")
"""

from clone.optimize.recipe import METHODS, Recipe, load_recipe
from clone.optimize.pipeline import OptimizeResult, optimize

__all__ = ["METHODS", "Recipe", "load_recipe", "OptimizeResult", "optimize"]
