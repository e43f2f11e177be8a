"""Ratio-score collection: candidate ratio vectors (exploration and exploitation) evaluated in a pool.

Every candidate meets the global parameter-removal target: `RatioSpace.repair` moves any raw vector
onto the target by scaling it toward the lower bound (shape kept) and, only when scaling cannot
reach the target, by shifting all layers together. Candidates are generated from the seed alone, so
a rerun regenerates the same list and skips those already in the records table.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing as mp
import pickle
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from clone.errors import CloneError
from clone.search.records import GRID, RatioRecord, RecordTable, ratio_key, snap
from clone.search.score import Budget, score_metrics

Evaluate = Callable[[list[float]], Mapping[str, float]]
ParamsRemoved = Callable[[Sequence[float]], float]


@dataclass
class RatioSpace:
    """The feasible set: n_layers ratios in [lo, hi] (per layer or scalar) removing target +- tol."""

    n_layers: int
    params_removed: ParamsRemoved
    target: float
    lo: float | Sequence[float] = 0.0
    hi: float | Sequence[float] = 0.9
    tol: float = 0.005

    def __post_init__(self) -> None:
        if self.n_layers < 1:
            raise CloneError(f"n_layers={self.n_layers}: must be at least 1")
        if not 0.0 <= self.target < 1.0:
            raise CloneError(f"target ratio {self.target}: allowed [0, 1)")
        self.lo_v = np.broadcast_to(np.asarray(self.lo, dtype=float), (self.n_layers,)).copy()
        self.hi_v = np.broadcast_to(np.asarray(self.hi, dtype=float), (self.n_layers,)).copy()
        if np.any(self.lo_v < 0) or np.any(self.hi_v >= 1) or np.any(self.lo_v > self.hi_v):
            raise CloneError(f"ratio bounds lo={self.lo}, hi={self.hi}: need 0 <= lo <= hi < 1 per layer")
        lowest, highest = self.removed(self.lo_v), self.removed(self.hi_v)
        if not lowest - self.tol <= self.target <= highest + self.tol:
            raise CloneError(
                f"target ratio {self.target}: these layer bounds remove between {lowest:.3f} and {highest:.3f}"
            )

    def removed(self, ratios: Sequence[float]) -> float:
        return float(self.params_removed(list(map(float, ratios))))

    def clip(self, ratios: Sequence[float]) -> np.ndarray:
        return np.asarray(snap(np.clip(np.asarray(ratios, dtype=float), self.lo_v, self.hi_v)))

    def feasible(self, ratios: Sequence[float]) -> bool:
        r = np.asarray(ratios, dtype=float)
        return bool(
            r.shape == (self.n_layers,)
            and np.all(r >= self.lo_v - 1e-9)
            and np.all(r <= self.hi_v + 1e-9)
            and abs(self.removed(r) - self.target) <= self.tol
        )

    def _bisect(self, family: Callable[[float], np.ndarray], a: float, b: float, iters: int = 40) -> np.ndarray:
        """The member of a monotone one-parameter family whose removal is closest to the target."""
        best = min((family(a), family(b)), key=lambda v: abs(self.removed(v) - self.target))
        for _ in range(iters):
            m = 0.5 * (a + b)
            v = family(m)
            got = self.removed(v)
            if abs(got - self.target) < abs(self.removed(best) - self.target):
                best = v
            if got < self.target:
                a = m
            else:
                b = m
            if b - a < 1e-7:
                break
        return best

    def repair(self, ratios: Sequence[float]) -> np.ndarray | None:
        """Move a vector onto the target: r(s) = lo + s*(r - lo), clipped; else a common shift.

        Returns None when no member of either family is within tol (the caller drops it).
        """
        r = np.clip(np.asarray(ratios, dtype=float).reshape(-1), self.lo_v, self.hi_v)
        if r.shape != (self.n_layers,):
            raise ValueError(f"{r.shape[0]} ratios for {self.n_layers} layers")
        r = self.clip(r)
        if abs(self.removed(r) - self.target) <= self.tol:
            return r
        span = r - self.lo_v
        if np.any(span > 0):
            s_max = float(np.max((self.hi_v - self.lo_v)[span > 0] / span[span > 0]))
            v = self._bisect(lambda s: self.clip(self.lo_v + s * span), 0.0, max(s_max, 1.0))
            if abs(self.removed(v) - self.target) <= self.tol:
                return v
        v = self._bisect(lambda t: self.clip(r + t), -1.0, 1.0)
        return v if abs(self.removed(v) - self.target) <= self.tol else None


def explore_vectors(space: RatioSpace, n: int, seed: int) -> list[np.ndarray]:
    """n random feasible vectors: Dirichlet shapes of random concentration, repaired to the target.

    The concentration is drawn log-uniformly in [0.3, 10], so the set spans spiky profiles (a few
    layers cut hard) to near-uniform ones.
    """
    rng = np.random.default_rng([seed, 1])
    out: list[np.ndarray] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n and attempts < 20 * n + 20:
        attempts += 1
        conc = float(np.exp(rng.uniform(np.log(0.3), np.log(10.0))))
        shape = rng.dirichlet(np.full(space.n_layers, conc))
        raw = space.lo_v + shape * space.n_layers * max(space.target, 1e-3)
        v = space.repair(raw)
        if v is not None and ratio_key(v) not in seen:
            seen.add(ratio_key(v))
            out.append(v)
    return out


NOISE_LEVELS = (0.3, 0.15, 0.075)  # perturbation sizes, cycled: broad moves and local refinement


def weighted_order(weights: Sequence[float], n: int) -> list[int]:
    """n picks of indices in proportion to `weights`, spread evenly (smooth weighted round-robin),
    deterministic: the allocation of perturbations to baselines."""
    w = [max(0.0, float(x)) for x in weights]
    total = sum(w)
    if total <= 0:
        return [i % len(w) for i in range(n)] if w else []
    current = [0.0] * len(w)
    picks = []
    for _ in range(n):
        current = [c + x for c, x in zip(current, w)]
        j = max(range(len(w)), key=lambda i: (current[i], -i))
        current[j] -= total
        picks.append(j)
    return picks


def exploit_vectors(
    space: RatioSpace, baselines: Mapping[str, Sequence[float]], n: int, seed: int,
    noise: float | Sequence[float] = NOISE_LEVELS, weights: Mapping[str, float] | None = None,
) -> list[tuple[str, np.ndarray]]:
    """The baselines (repaired to the target) then seeded perturbations of them, n in all.

    A perturbation multiplies each ratio by exp(N(0, s)) and adds N(0, s * mean ratio / 3), then
    repairs; s cycles through `noise`. Perturbations go to the baselines in proportion to `weights`
    (default: equal shares, round-robin). Sources: "exploit:<name>" and "exploit:<name>+noise".
    """
    rng = np.random.default_rng([seed, 2])
    levels = [noise] if isinstance(noise, (int, float)) else list(noise)
    out: list[tuple[str, np.ndarray]] = []
    seen: set[str] = set()
    bases: list[tuple[str, np.ndarray]] = []
    for name, vec in baselines.items():
        vec = np.asarray(vec, dtype=float)
        if vec.shape != (space.n_layers,):
            raise CloneError(f"baseline {name!r} has {vec.size} ratios, the model has {space.n_layers} layers")
        v = space.repair(vec)
        if v is None:
            continue
        bases.append((name, v))
        if ratio_key(v) not in seen and len(out) < n:
            seen.add(ratio_key(v))
            out.append((f"exploit:{name}", v))
    share = [1.0 if weights is None else float(weights.get(name, 0.0)) for name, _ in bases]
    order = weighted_order(share, 20 * n + 20)
    for attempts, j in enumerate(order):
        if len(out) >= n:
            break
        name, base = bases[j]
        s = levels[attempts % len(levels)]
        scale = s * max(float(np.mean(base)), GRID) / 3
        raw = base * np.exp(rng.normal(0.0, s, base.shape)) + rng.normal(0.0, scale, base.shape)
        v = space.repair(raw)
        if v is not None and ratio_key(v) not in seen:
            seen.add(ratio_key(v))
            out.append((f"exploit:{name}+noise", v))
    return out


def rank_weights(table: RecordTable, firsts: Sequence[tuple[str, np.ndarray]], decay: float = 0.5) -> dict[str, float]:
    """Perturbation shares of the baselines by the rank of their evaluated score: 1, 1/2, 1/4, ...
    (baselines that failed get none), so exploitation searches mostly around the best ones."""
    scored = []
    for source, vec in firsts:
        rec = table.get(ratio_key(vec))
        if rec is not None and rec.ok:
            scored.append((rec.score, source.split(":", 1)[1]))
    scored.sort(key=lambda t: (-t[0], t[1]))
    return {name: decay ** rank for rank, (_, name) in enumerate(scored)}


# --- evaluation in a worker pool -------------------------------------------------------------------

_WORKER_EVALUATE: Evaluate | None = None


def _init_worker(evaluate: Evaluate, threads: int) -> None:
    """Process-pool initializer: the evaluator is sent once per worker, not once per candidate."""
    global _WORKER_EVALUATE
    _WORKER_EVALUATE = evaluate
    if "torch" in sys.modules:  # share the cores between workers instead of oversubscribing them
        sys.modules["torch"].set_num_threads(threads)


def _timed_call(evaluate: Evaluate | None, ratios: list[float]) -> tuple[dict | None, str, float]:
    """Run one evaluation; an exception becomes an error string so one bad candidate stops nothing."""
    evaluate = evaluate if evaluate is not None else _WORKER_EVALUATE
    start = time.perf_counter()
    try:
        metrics = dict(evaluate(list(ratios)))
        if "ppl" not in metrics:
            raise KeyError("evaluator result has no 'ppl'")
        return {k: float(v) for k, v in metrics.items()}, "", time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - recorded, the collection goes on
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" at {last[0].filename.rsplit('/', 1)[-1]}:{last[0].lineno}" if last else ""
        msg = " ".join(f"{type(exc).__name__}: {exc}{where}".split())
        return None, msg, time.perf_counter() - start


@dataclass
class Evaluation:
    """How candidates are evaluated and scored: evaluator, space, budget and the worker pool.

    executor "auto": processes when the evaluator pickles, threads otherwise; workers=1 runs inline.
    """

    evaluate: Evaluate
    space: RatioSpace
    budget: Budget = Budget()
    workers: int = 1
    executor: str = "auto"
    alpha: float = 2.0
    beta: float = 2.0
    progress: bool = True

    def _kind(self) -> str:
        if self.workers <= 1:
            return "inline"
        if self.executor != "auto":
            return self.executor
        try:
            pickle.dumps(self.evaluate)
            return "process"
        except Exception:  # noqa: BLE001 - any pickling failure means threads
            return "thread"

    def record(self, ratios: Sequence[float], source: str, result: tuple[dict | None, str, float]) -> RatioRecord:
        metrics, error, seconds = result
        rec = RatioRecord(list(ratios), source, eval_time_s=seconds, error=error)
        try:
            rec.params_removed_frac = self.space.removed(ratios)
        except Exception:  # noqa: BLE001 - bookkeeping only
            pass
        if metrics is not None:
            rec.ppl = metrics.get("ppl", math.nan)
            rec.ttft_s = metrics.get("ttft_s", math.nan)
            rec.tpot_s = metrics.get("tpot_s", math.nan)
            rec.energy_J = metrics.get("energy_J", math.nan)
            rec.score = score_metrics(metrics, self.budget, self.alpha, self.beta)
            if not math.isfinite(rec.score):
                rec.error = rec.error or "score is not finite (a budgeted metric is missing or NaN)"
        return rec

    def run(self, candidates: Sequence[tuple[str, Sequence[float]]], table: RecordTable, desc: str) -> list[RatioRecord]:
        """Evaluate the candidates not yet in the table; append each to the table as it finishes."""
        todo: list[tuple[str, list[float]]] = []
        keys: set[str] = set()
        for source, ratios in candidates:
            key = ratio_key(ratios)
            if key not in table and key not in keys:
                keys.add(key)
                todo.append((source, snap(ratios)))
        done: list[RatioRecord] = []
        if not todo:
            return done
        bar = tqdm(total=len(todo), desc=desc, unit="cand", disable=not self.progress, file=sys.stderr)
        kind = self._kind()
        try:
            if kind == "inline":
                for source, ratios in todo:
                    rec = self.record(ratios, source, _timed_call(self.evaluate, ratios))
                    table.add(rec)
                    done.append(rec)
                    bar.update(1)
                return done
            if kind == "process":
                threads = max(1, (mp.cpu_count() or 1) // self.workers)
                pool: cf.Executor = cf.ProcessPoolExecutor(
                    self.workers,
                    mp_context=mp.get_context("spawn"),
                    initializer=_init_worker,
                    initargs=(self.evaluate, threads),
                )
                fn, first = _timed_call, None
            elif kind == "thread":
                pool = cf.ThreadPoolExecutor(self.workers)
                fn, first = _timed_call, self.evaluate
            else:
                raise CloneError(f"executor {self.executor!r}: allowed auto, process, thread")
            with pool:
                futures = {pool.submit(fn, first, ratios): (source, ratios) for source, ratios in todo}
                try:
                    for fut in cf.as_completed(futures):
                        source, ratios = futures[fut]
                        try:
                            result = fut.result()
                        except Exception as exc:  # noqa: BLE001 - e.g. a worker process died
                            result = (None, f"{type(exc).__name__}: {exc}", math.nan)
                        rec = self.record(ratios, source, result)
                        table.add(rec)
                        done.append(rec)
                        bar.update(1)
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
            return done
        finally:
            bar.close()


def collect(
    evaluation: Evaluation,
    table: RecordTable,
    baselines: Mapping[str, Sequence[float]],
    n_explore: int,
    n_exploit: int,
    seed: int,
) -> list[RatioRecord]:
    """Baselines first; then perturbations around them, most around the best-scoring ones
    (`rank_weights`); then exploration. Evaluated and appended to the table (resumable: the shares
    depend only on the baselines' records)."""
    space = evaluation.space
    firsts = exploit_vectors(space, baselines, min(n_exploit, len(baselines)), seed)
    done = evaluation.run(firsts, table, desc="evaluate baselines")
    weights = rank_weights(table, firsts)
    candidates = exploit_vectors(space, baselines, n_exploit, seed, weights=weights or None)
    candidates += [("explore", v) for v in explore_vectors(space, n_explore, seed)]
    return done + evaluation.run(candidates, table, desc="collect ratio-score records")
