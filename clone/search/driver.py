"""The whole ratio search: collect records, train the generative model, evaluate what it generates.

Every stage is resumable: the candidates of each stage are a function of the seed (and, for the
generated ones, of the collected records, which the model sees in a canonical order), and candidates
already in <out_dir>/records.csv are not evaluated again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from clone.errors import CloneError
from clone.search.collect import Evaluate, Evaluation, ParamsRemoved, RatioSpace, collect
from clone.search.generative import Candidate, GenerativeConfig, TrainStats, generate_candidates
from clone.search.records import RatioRecord, RecordTable, ratio_key
from clone.search.score import Budget

# Candidate counts when the caller gives none: (explore, exploit, generate).
FULL_COUNTS = (150, 60, 10)
FAST_COUNTS = (24, 12, 4)
FAST_CONFIG = dict(epochs=60, beam=2)


@dataclass
class SearchResult:
    best: RatioRecord
    table: pd.DataFrame
    records_path: Path
    best_collected: RatioRecord | None
    generated: list[RatioRecord] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    train_stats: TrainStats | None = None
    seconds: float = 0.0


def search(
    n_layers: int,
    params_removed: ParamsRemoved,
    evaluate: Evaluate,
    baselines: Mapping[str, Sequence[float]],
    target: float,
    n_explore: int | None = None,
    n_exploit: int | None = None,
    n_generate: int | None = None,
    *,
    out_dir: str | os.PathLike,
    seed: int = 0,
    workers: int = 1,
    fast: bool = False,
    budget: Budget | None = None,
    bounds: tuple[float | Sequence[float], float | Sequence[float]] = (0.0, 0.9),
    tol: float = 0.005,
    config: GenerativeConfig | None = None,
    rounds: int = 1,
    executor: str = "auto",
    progress: bool = True,
) -> SearchResult:
    """Search per-layer pruning ratios removing `target` (+- tol) of the parameters.

    evaluate(ratios) -> {ppl, ttft_s, tpot_s, energy_J} is the real (expensive) evaluation; each
    result is scored by Eq. 1 against `budget`. `rounds` > 1 retrains on the records including the
    generated ones and generates again (NAO-style), n_generate per round. Returns the best record
    of the whole table.
    """
    start = time.perf_counter()
    defaults = FAST_COUNTS if fast else FULL_COUNTS
    n_explore = defaults[0] if n_explore is None else n_explore
    n_exploit = defaults[1] if n_exploit is None else n_exploit
    n_generate = defaults[2] if n_generate is None else n_generate
    for name, value in (("n_explore", n_explore), ("n_exploit", n_exploit), ("n_generate", n_generate), ("workers", workers)):
        if value < 0 or (name == "workers" and value < 1):
            raise CloneError(f"{name}={value}: must be a {'positive' if name == 'workers' else 'non-negative'} integer")
    space = RatioSpace(n_layers, params_removed, target, bounds[0], bounds[1], tol)
    evaluation = Evaluation(evaluate, space, budget or Budget(), workers, executor, progress=progress)
    table = RecordTable.open(out_dir, n_layers)

    collect(evaluation, table, baselines, n_explore, n_exploit, seed)
    collected = table.ok_records(("explore", "exploit"))
    best_collected = max(collected, key=lambda r: r.score) if collected else None

    candidates: list[Candidate] = []
    stats: TrainStats | None = None
    generated: list[RatioRecord] = []
    cfg = config or GenerativeConfig()
    cfg = replace(cfg, seed=seed, **(FAST_CONFIG if fast and config is None else {}))
    train = list(collected)
    for round_ in range(rounds if n_generate > 0 else 0):
        if len(train) < 2:
            break
        # Round j trains on the collection plus rounds < j: a function of the seed and the records,
        # so a resumed run regenerates the same candidates and skips those already evaluated.
        known = {r.key for r in train}
        new, model = generate_candidates(
            train, space.lo_v, space.hi_v, space.repair, n_generate, replace(cfg, seed=seed + 1000 * round_),
            known.__contains__, space.removed, progress,
        )
        stats = model.stats
        candidates += new
        evaluation.run([("generated", c.ratios) for c in new], table,
                       desc=f"evaluate generated candidates (round {round_ + 1}/{rounds})")
        got = [r for c in new if (r := table.get(ratio_key(c.ratios))) is not None]
        generated += got
        train += [r for r in got if r.ok]

    best = table.best()
    if best is None:
        errors = sorted({r.error for r in table.records if r.error})
        raise CloneError(f"no candidate could be evaluated; first error: {errors[0] if errors else 'none'}")
    return SearchResult(best, table.frame(), table.path, best_collected, generated, candidates, stats,
                        time.perf_counter() - start)
