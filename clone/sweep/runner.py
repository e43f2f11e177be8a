"""Run the points of a sweep: skip the ones already in the table, compute the rest in a local process
pool or on a Ray cluster, and keep the table on disk current after every finished point.

The table is tidy: one row per point with `point_id`, `sweep`, `kind`, every parameter of the kind
(defaults included), every result column, `error` (empty when the point succeeded) and
`elapsed_s`. It is rewritten through a temporary file and a rename after each point, so an
interrupted sweep leaves a valid table and a rerun of the same command skips what finished.
A point that raises gets its error in the table and the sweep goes on.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from clone.errors import CloneError
from clone.sweep.config import Point, SweepConfig, expand_points, load_config
from clone.sweep.kinds import PointContext, get_kind

META_COLUMNS = ("point_id", "sweep", "kind")
TAIL_COLUMNS = ("error", "elapsed_s")
EXECUTORS = ("local", "ray")
Outcome = dict[str, Any]  # {"results": {...}, "error": str, "elapsed_s": float}


@dataclass
class SweepResult:
    table: pd.DataFrame
    path: Path
    n_points: int
    n_skipped: int
    n_run: int
    n_errors: int  # rows of the table whose point failed
    n_dropped: int  # rows of an earlier table whose point is no longer in the config
    seconds: float


def table_columns(cfg: SweepConfig, extra: list[str] | None = None) -> list[str]:
    kind = cfg.kind
    return [*META_COLUMNS, *kind.params, *kind.results, *(extra or []), *TAIL_COLUMNS]


# ------------------------------------------------------------------------------ one point
def execute(kind_name: str, params: dict[str, Any], point_id: str, work_dir: str) -> Outcome:
    """Compute one point in this process. The point's own failure is returned, not raised, so that a
    worker pool or a Ray task reports it like any result."""
    t0 = time.perf_counter()
    try:
        results = get_kind(kind_name).run(dict(params), PointContext(Path(work_dir) / point_id, point_id))
        error = ""
    except Exception as exc:  # noqa: BLE001  (any failure of a point is data for the table)
        results = {}
        text = " ".join(str(exc).split())
        error = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        print(f"sweep point {point_id} failed:\n{traceback.format_exc(limit=4)}", file=sys.stderr)
    return {"results": results, "error": error, "elapsed_s": round(time.perf_counter() - t0, 3)}


def _init_worker(threads: int) -> None:
    # set before torch loads in this fresh (spawned) process; 2 workers on 2 cores -> 1 thread each
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)


# ------------------------------------------------------------------------------ executors
Done = Callable[[Point, Outcome], None]


def _run_inline(kind: str, todo: list[Point], work_dir: str, done: Done) -> None:
    for p in todo:
        done(p, execute(kind, p.params, p.id, work_dir))


def _run_pool(kind: str, todo: list[Point], work_dir: str, workers: int, done: Done) -> None:
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = multiprocessing.get_context("spawn")  # fork after torch/OpenMP init can deadlock
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)) as pool:
        futures = {pool.submit(execute, kind, p.params, p.id, work_dir): p for p in todo}
        try:
            for fut in as_completed(futures):
                done(futures[fut], fut.result())
        except BrokenProcessPool:
            raise CloneError("a sweep worker process died (out of memory?); finished points are saved; "
                             "rerun the same command to resume, with fewer --workers") from None
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _run_ray(kind: str, todo: list[Point], work_dir: str, workers: int, address: str | None, done: Done) -> None:
    try:
        import ray
    except ImportError:
        raise CloneError("--executor ray: Ray is not installed (pip install 'clone-edge[ray]')") from None
    started = not ray.is_initialized()
    if started:
        kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False)
        address = address or os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, **kw)
        else:  # a one-node Ray instance on this machine (what a test or a laptop uses)
            ray.init(num_cpus=workers, **kw)
    task = ray.remote(num_cpus=1, max_retries=0)(execute)
    pending = {task.remote(kind, p.params, p.id, work_dir): p for p in todo}
    try:
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                p = pending.pop(ref)
                try:
                    out = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker died: the point failed
                    out = {"results": {}, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}",
                           "elapsed_s": math.nan}
                done(p, out)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()


# ------------------------------------------------------------------------------ table
def read_table(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    try:
        df = pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise CloneError(f"{path}: cannot read the sweep table ({exc}); delete it or use --fresh") from None
    if "point_id" not in df.columns:
        raise CloneError(f"{path}: not a sweep table (no point_id column); delete it or use --fresh")
    df["error"] = error_text(df)
    return df


def error_text(df: pd.DataFrame) -> list[str]:
    """The error column as text ('' for a point that succeeded; CSV reads an all-empty column as NaN)."""
    if "error" not in df.columns:
        return [""] * len(df)
    return ["" if pd.isna(v) else str(v) for v in df["error"]]


def write_table(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, index=False)
    os.replace(tmp, path)


class _Table:
    """Rows by point id, written in config order after every change."""

    def __init__(self, cfg: SweepConfig, points: list[Point], path: Path, existing: pd.DataFrame | None) -> None:
        self.cfg, self.points, self.path = cfg, points, path
        self.rows: dict[str, dict[str, Any]] = {}
        if existing is not None:
            for rec in existing.to_dict("records"):
                self.rows[str(rec["point_id"])] = rec

    def add(self, p: Point, out: Outcome) -> None:
        kind = self.cfg.kind
        res = out["results"]
        row: dict[str, Any] = {"point_id": p.id, "sweep": self.cfg.name, "kind": kind.name, **p.params}
        row.update({c: res.get(c, math.nan) for c in kind.results})
        row.update({c: v for c, v in res.items() if c not in row})
        row.update(error=out["error"], elapsed_s=out["elapsed_s"])
        self.rows[p.id] = row

    def frame(self) -> pd.DataFrame:
        rows = [self.rows[p.id] for p in self.points if p.id in self.rows]
        extra = sorted({c for r in rows for c in r} - set(table_columns(self.cfg)))
        return pd.DataFrame(rows, columns=table_columns(self.cfg, extra))

    def write(self) -> pd.DataFrame:
        df = self.frame()
        write_table(self.path, df)
        return df


def run_sweep(config: SweepConfig | str | Path, out_dir: str | Path, *, quick: bool = False,
              executor: str = "local", workers: int | None = None, ray_address: str | None = None,
              retry_errors: bool = False, fresh: bool = False, progress: bool = True,
              log: Callable[[str], None] | None = None) -> SweepResult:
    """Expand and check every point, then run those not yet in `out_dir/<name>[.quick].csv`."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    t0 = time.perf_counter()
    cfg = config if isinstance(config, SweepConfig) else load_config(config)
    if executor not in EXECUTORS:
        raise CloneError(f"--executor {executor!r} is not an executor (allowed: {', '.join(EXECUTORS)})")
    if workers is not None and workers < 1:
        raise CloneError(f"--workers {workers}: must be >= 1")
    points = expand_points(cfg, quick)  # every point is checked before any runs
    path = Path(out_dir) / cfg.table_name(quick)
    existing = None if fresh else read_table(path)
    ids = {p.id for p in points}
    dropped = 0 if existing is None else int((~existing["point_id"].astype(str).isin(ids)).sum())
    table = _Table(cfg, points, path, existing)
    finished = {pid for pid, r in table.rows.items() if pid in ids and not (retry_errors and r.get("error"))}
    todo = [p for p in points if p.id not in finished]
    n_workers = min(workers or cfg.variant(quick).workers or (os.cpu_count() or 1), max(len(todo), 1))
    log(f"sweep {cfg.name}{' (quick)' if quick else ''}: {len(points)} points, {len(points) - len(todo)} done, "
        f"{len(todo)} to run ({executor}, {n_workers} worker{'s' if n_workers > 1 else ''}) -> {path}")
    if dropped:
        log(f"  {dropped} rows of {path.name} are points no longer in the config; they are dropped")
    table.write()

    from tqdm import tqdm

    bar = tqdm(total=len(points), initial=len(points) - len(todo), desc=f"sweep {cfg.name}", unit="point",
               file=sys.stderr, disable=not progress)
    errors = [0]

    def done(p: Point, out: Outcome) -> None:
        table.add(p, out)
        table.write()
        errors[0] += bool(out["error"])
        bar.update(1)
        bar.set_postfix(errors=errors[0])

    work_dir = str(path.with_name(path.name.removesuffix(".csv") + ".work").resolve())
    try:
        if todo and executor == "ray":
            _run_ray(cfg.kind.name, todo, work_dir, n_workers, ray_address, done)
        elif todo and n_workers > 1:
            _run_pool(cfg.kind.name, todo, work_dir, n_workers, done)
        elif todo:
            _run_inline(cfg.kind.name, todo, work_dir, done)
    finally:
        bar.close()
    df = table.write()
    n_err = sum(1 for e in error_text(df) if e)
    return SweepResult(df, path, len(points), len(points) - len(todo), len(todo), n_err, dropped,
                       time.perf_counter() - t0)
