"""Per-process state the real-model kinds share: the loaded checkpoint, calibration windows and the
statistics passes (importance, block influence, fluctuation) that every pruning ratio reuses.

A worker process (or a Ray worker) keeps these between points, so a pruning sweep pays for the
model load and the Taylor pass once per process, not once per point.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from clone.sweep.kinds.base import PointError

CALIB_CORPUS = "shakespeare"  # the optimizer's calibration corpus (clone.optimize.stages)


def check_checkpoint(name: Any, key: str = "model") -> None:
    from clone.errors import CloneError
    from clone.model.checkpoint import BUILTIN, resolve

    try:
        resolve(str(name))
    except CloneError as exc:
        raise PointError(key, str(exc), ", ".join(BUILTIN) + ", or a model directory / .gguf file") from None


def check_protocol(p: dict[str, Any]) -> None:
    """The perplexity protocol and calibration sizes of a point (keys corpus, split, seq_len, max_tokens,
    calib_samples, calib_seq_len)."""
    from clone.data.corpora import CORPORA, SPLITS

    if p["corpus"] not in CORPORA:
        raise PointError("corpus", f"{p['corpus']!r} is not a corpus", ", ".join(CORPORA))
    if p["split"] not in SPLITS:
        raise PointError("split", f"{p['split']!r} is not a split", ", ".join(SPLITS))
    if p["seq_len"] < 2:
        raise PointError("seq_len", f"{p['seq_len']} must be >= 2")
    if p["max_tokens"] and p["max_tokens"] <= p["seq_len"]:
        raise PointError("max_tokens", f"{p['max_tokens']} must exceed seq_len {p['seq_len']} (0 = whole split)")
    for key in ("calib_samples", "calib_seq_len"):
        if p[key] < 1:
            raise PointError(key, f"{p[key]} must be >= 1")


@lru_cache(maxsize=1)
def checkpoint(model: str) -> Any:
    from clone.model.checkpoint import load_checkpoint

    return load_checkpoint(model)


@lru_cache(maxsize=4)
def calib(model: str, n: int, seq_len: int, seed: int) -> Any:
    from clone.data.calibration import calibration_samples

    return calibration_samples(checkpoint(model).tokenizer, CALIB_CORPUS, "train", n, seq_len, seed)


@lru_cache(maxsize=8)
def importance(model: str, method: str, n: int, seq_len: int, seed: int) -> Any:
    from clone.prune import compute_importance

    return compute_importance(checkpoint(model).model, method, calib(model, n, seq_len, seed), seed=seed)


@lru_cache(maxsize=4)
def block_influence(model: str, n: int, seq_len: int, seed: int) -> list[float]:
    from clone.prune.baselines import block_influence as bi

    return bi(checkpoint(model).model, calib(model, n, seq_len, seed))


@lru_cache(maxsize=4)
def fluctuation(model: str, n: int, seq_len: int, seed: int) -> Any:
    from clone.prune.baselines import fluctuation_channels

    return fluctuation_channels(checkpoint(model).model, calib(model, n, seq_len, seed))


def perplexity(net: Any, model: str, p: dict[str, Any]) -> float:
    from clone.eval.perplexity import perplexity as ppl

    return ppl(net, checkpoint(model).tokenizer, corpus=p["corpus"], split=p["split"], seq_len=p["seq_len"],
               max_tokens=p["max_tokens"] or None, progress=False).ppl
