"""An optimization recipe: every knob of `clone optimize`, as a dataclass, a YAML file or CLI flags.

Like llm-compressor's recipes, a YAML file can hold all of it; flags given on the command line
override the file. Validation happens before any output is written.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from clone.errors import CloneError

METHODS = ("clone", "uniform", "random", "shortgpt", "flap", "none")
IMPORTANCE = ("taylor", "magnitude", "activation", "fluctuation", "random")
SPLITS = ("importance", "balanced")
QUANT_METHODS = ("rtn", "gptq")
BITS = (16, 8, 4)
MAX_RATIO = 0.7  # strongest pruning the optimizer will apply before declaring a model unfit


@dataclass
class Recipe:
    profile: str = "jetson-orin-nano-8gb"
    mode: str | None = None  # power mode; the profile's default when None
    method: str = "clone"
    target_ratio: float | None = None  # fraction of parameters to remove; derived from memory when None
    importance: str = "taylor"
    split: str = "importance"  # how a layer's ratio divides between KV groups and FFN channels
    bits: int = 16
    group_size: int = 64  # 0 = per-channel; 64 divides SmolLM2's 576 and 1536 widths
    partial_groups: bool = False  # allow a group size that does not divide a width (shorter last group)
    quant_method: str = "gptq"
    symmetric: bool = False
    nsamples: int = 32  # calibration windows for importance, GPTQ and recovery
    seq_len: int = 256
    seed: int = 0
    app_class: str | None = None  # latency budget class of the profile
    budget_ttft_ms: float | None = None
    budget_tpot_ms: float | None = None
    budget_energy_j: float | None = None  # per request of the workload; default: see pipeline
    prompt_tokens: int = 128  # workload the cost model scores
    output_tokens: int = 128
    recover_steps: int = 0  # LoRA recovery steps (rank 8, alpha 16)
    recover_lr: float = 5e-4
    eval_tokens: int = 2048  # validation tokens (windows spread over the split) scoring each search candidate
    test_tokens: int = 16384  # tokens of the test split in the final report (0 = whole split)
    n_explore: int | None = None  # None: the pipeline's defaults (FULL_DEFAULTS / FAST_DEFAULTS)
    n_exploit: int | None = None
    n_generate: int | None = None  # per round
    search_rounds: int = 2  # train, generate, evaluate; then retrain on all records (NAO-style)
    confirm_top: int = 6  # best records re-scored on confirm_tokens validation tokens (0 = off)
    confirm_tokens: int = 8192
    workers: int = 1
    fast: bool = False
    onnx: bool = True
    weight_memory_fraction: float = 0.5  # share of usable device memory the weights may take

    def validate(self, where: str = "recipe") -> "Recipe":
        def bad(key: str, value: Any, allowed: str) -> CloneError:
            return CloneError(f"{where}: {key}={value!r} is not allowed (allowed: {allowed})")

        if self.method not in METHODS:
            raise bad("method", self.method, ", ".join(METHODS))
        if self.importance not in IMPORTANCE:
            raise bad("importance", self.importance, ", ".join(IMPORTANCE))
        if self.split not in SPLITS:
            raise bad("split", self.split, ", ".join(SPLITS))
        if self.quant_method not in QUANT_METHODS:
            raise bad("quant_method", self.quant_method, ", ".join(QUANT_METHODS))
        if self.bits not in BITS:
            raise bad("bits", self.bits, "4, 8, 16")
        if self.target_ratio is not None and not 0 <= self.target_ratio < 1:
            raise bad("target_ratio", self.target_ratio, "0 <= ratio < 1")
        if self.target_ratio is not None and self.target_ratio > MAX_RATIO:
            raise bad("target_ratio", self.target_ratio, f"at most {MAX_RATIO} for structured pruning")
        if self.group_size < 0:
            raise bad("group_size", self.group_size, "0 (per-channel) or a positive divisor of the input width")
        for key in ("nsamples", "seq_len", "prompt_tokens", "output_tokens", "eval_tokens", "workers", "search_rounds",
                    "confirm_tokens"):
            if getattr(self, key) < 1:
                raise bad(key, getattr(self, key), "a positive integer")
        if self.seq_len < 16:
            raise bad("seq_len", self.seq_len, ">= 16")
        if self.eval_tokens <= self.seq_len:
            raise bad("eval_tokens", self.eval_tokens, f"more than seq_len ({self.seq_len})")
        if self.confirm_top < 0:
            raise bad("confirm_top", self.confirm_top, ">= 0")
        if self.recover_steps < 0:
            raise bad("recover_steps", self.recover_steps, ">= 0")
        if self.test_tokens < 0:
            raise bad("test_tokens", self.test_tokens, ">= 0 (0 = whole split)")
        for key in ("budget_ttft_ms", "budget_tpot_ms", "budget_energy_j"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise bad(key, value, "a positive number")
        if not 0 < self.weight_memory_fraction <= 1:
            raise bad("weight_memory_fraction", self.weight_memory_fraction, "0 < fraction <= 1")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def merged(self, overrides: dict[str, Any]) -> "Recipe":
        known = {f.name for f in fields(self)}
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if k in known and v is not None})


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read a YAML recipe; unknown keys and wrong types are errors naming the file and key."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except FileNotFoundError:
        raise CloneError(f"{p}: recipe file not found") from None
    except yaml.YAMLError as exc:
        raise CloneError(f"{p}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise CloneError(f"{p}: a recipe is a mapping of keys to values")
    data = data.get("optimize", data)  # allow a top-level `optimize:` section
    types = {f.name: f.type for f in fields(Recipe)}
    for key, value in data.items():
        if key not in types:
            raise CloneError(f"{p}: unknown key {key!r} (allowed: {', '.join(types)})")
        _check_type(p, key, value, str(types[key]))
    return Recipe(**data).validate(str(p))


def _check_type(path: Path, key: str, value: Any, type_name: str) -> None:
    if value is None:
        if "None" not in type_name:
            raise CloneError(f"{path}: {key} must not be empty")
        return
    ok = {
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
    }
    base = type_name.split("|")[0].strip()
    if base in ok and not ok[base](value):
        raise CloneError(f"{path}: {key}={value!r} must be of type {base}")


def recipe_fields() -> list[dataclasses.Field]:
    return list(fields(Recipe))


__all__ = ["BITS", "IMPORTANCE", "SPLITS", "MAX_RATIO", "METHODS", "QUANT_METHODS", "Recipe", "load_recipe"]
