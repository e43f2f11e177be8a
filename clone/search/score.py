"""Eq. 1 of the CLONE paper: the score of a pruned model, perplexity penalised only when over budget.

    s = (1/ppl) * (E/e)^(1[E<e]*alpha) * prod_k (T_k/t_k)^(1[T_k<t_k]*beta)

The paper has one latency T; users give a TTFT and a TPOT budget. The latency factor here is the
product over the latency metrics that have a budget (TTFT, TPOT), each penalised with exponent beta
only when it is over its own budget, so a candidate over both budgets pays twice. A budget of None
means "no budget" (factor 1). Everything works elementwise on numpy arrays and pandas Series.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from clone.errors import CloneError

ArrayLike = float | np.ndarray | pd.Series


@dataclass(frozen=True)
class Budget:
    """Device budgets of Eq. 1 (T and E); None leaves that metric unpenalised."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    energy_J: float | None = None

    def __post_init__(self) -> None:
        for name in ("ttft_s", "tpot_s", "energy_J"):
            value = getattr(self, name)
            if value is not None and not (np.isfinite(value) and value > 0):
                raise CloneError(f"budget {name}={value!r}: must be a positive finite number or None")

    @property
    def latency_s(self) -> dict[str, float | None]:
        return {"ttft_s": self.ttft_s, "tpot_s": self.tpot_s}


def _penalty(measured: ArrayLike, budget: float | None, exponent: float) -> ArrayLike:
    """(budget/measured)^exponent where measured > budget, else 1; NaN measurements stay NaN."""
    if budget is None:
        return 1.0
    m = np.asarray(measured, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(m > budget, (budget / m) ** exponent, 1.0)
    factor = np.where(np.isnan(m), np.nan, factor)
    return factor if factor.ndim else float(factor)


def _as_latency_pairs(
    latency_s: ArrayLike | Sequence | Mapping, budget_latency_s: float | None | Sequence | Mapping
) -> list[tuple[ArrayLike, float | None]]:
    """Pair each latency metric with its budget; accepts a scalar pair, two sequences or two dicts."""
    if isinstance(budget_latency_s, Mapping):
        if not isinstance(latency_s, Mapping):
            raise CloneError("latency budgets given by name need latencies given by name")
        missing = [k for k, b in budget_latency_s.items() if b is not None and k not in latency_s]
        if missing:
            raise CloneError(f"latency budget for {missing[0]!r} but no such measured latency")
        return [(latency_s[k], b) for k, b in budget_latency_s.items() if b is not None]
    if isinstance(budget_latency_s, Sequence) and not isinstance(budget_latency_s, str):
        if not isinstance(latency_s, Sequence) or len(latency_s) != len(budget_latency_s):
            raise CloneError(
                f"{len(budget_latency_s)} latency budgets need as many measured latencies, got {latency_s!r}"
            )
        return list(zip(latency_s, budget_latency_s))
    return [(latency_s, budget_latency_s)]


def clone_score(
    ppl: ArrayLike,
    latency_s: ArrayLike | Sequence | Mapping,
    energy_J: ArrayLike,
    budget_latency_s: float | None | Sequence | Mapping,
    budget_energy_J: float | None,
    alpha: float = 2.0,
    beta: float = 2.0,
) -> ArrayLike:
    """Eq. 1. `latency_s`/`budget_latency_s` may be scalars (one latency), equal-length sequences
    (e.g. (ttft, tpot)) or dicts keyed by metric name; each budgeted latency is penalised on its own.

    A non-finite or non-positive perplexity gives score 0 (the model is useless), NaN stays NaN.
    """
    p = np.asarray(ppl, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        base = np.where(np.isfinite(p) & (p > 0), 1.0 / p, 0.0)
    base = np.where(np.isnan(p), np.nan, base)
    score = base * _penalty(energy_J, budget_energy_J, alpha)
    for measured, budget in _as_latency_pairs(latency_s, budget_latency_s):
        score = score * _penalty(measured, budget, beta)
    if isinstance(ppl, pd.Series):
        return pd.Series(score, index=ppl.index, name="score")
    score = np.asarray(score)
    return score if score.ndim else float(score)


def score_metrics(metrics: Mapping[str, float], budget: Budget, alpha: float = 2.0, beta: float = 2.0) -> float:
    """Eq. 1 for one evaluation result {ppl, ttft_s, tpot_s, energy_J} against a Budget."""
    return clone_score(
        metrics["ppl"],
        {"ttft_s": metrics.get("ttft_s", np.nan), "tpot_s": metrics.get("tpot_s", np.nan)},
        metrics.get("energy_J", np.nan),
        budget.latency_s,
        budget.energy_J,
        alpha,
        beta,
    )


def score_frame(df: pd.DataFrame, budget: Budget, alpha: float = 2.0, beta: float = 2.0) -> pd.Series:
    """Eq. 1 over a table with columns ppl, ttft_s, tpot_s, energy_J (one score per row)."""
    return clone_score(
        df["ppl"].astype(float),
        {"ttft_s": df["ttft_s"].astype(float), "tpot_s": df["tpot_s"].astype(float)},
        df["energy_J"].astype(float),
        budget.latency_s,
        budget.energy_J,
        alpha,
        beta,
    )
