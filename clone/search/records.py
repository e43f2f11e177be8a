"""Ratio/score records and their CSV table, written after every finished candidate so a run resumes.

One row per evaluated candidate. Ratios are stored as one string column ("0.000;0.125;...") so the
table has a fixed set of columns for any number of layers. A candidate is identified by its ratio
vector rounded to the 0.001 grid (`ratio_key`); the table is the memory of which candidates are done.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from clone.atomic import atomic_path
from clone.errors import CloneError

GRID = 0.001
RECORDS_FILE = "records.csv"
SOURCES = ("explore", "exploit", "generated")


def snap(ratios: Iterable[float]) -> list[float]:
    """Ratios on the 0.001 grid, as the authors' code tokenises them."""
    return [round(round(float(r) / GRID) * GRID, 3) for r in ratios]


def ratio_key(ratios: Iterable[float]) -> str:
    """The identity of a candidate: its ratios on the 0.001 grid, ';'-joined (also the CSV form)."""
    return ";".join(f"{r:.3f}" for r in snap(ratios))


def parse_ratios(text: str) -> list[float]:
    return [float(x) for x in str(text).split(";") if x != ""]


@dataclass
class RatioRecord:
    """One evaluated candidate: its per-layer ratios, where it came from and what it measured."""

    ratios: list[float]
    source: str  # "explore" | "exploit:<method>" | "generated"
    ppl: float = math.nan
    ttft_s: float = math.nan
    tpot_s: float = math.nan
    energy_J: float = math.nan
    params_removed_frac: float = math.nan
    score: float = math.nan
    eval_time_s: float = math.nan
    error: str = ""

    def __post_init__(self) -> None:
        self.ratios = snap(self.ratios)
        if self.source.split(":", 1)[0] not in SOURCES:
            raise CloneError(f"record source {self.source!r}: must be explore, exploit:<method> or generated")

    @property
    def key(self) -> str:
        return ratio_key(self.ratios)

    @property
    def ok(self) -> bool:
        return not self.error and math.isfinite(self.score)

    def to_row(self) -> dict:
        row = asdict(self)
        row["ratios"] = self.key
        return row

    @classmethod
    def from_row(cls, row: dict) -> "RatioRecord":
        kwargs = {}
        for f in fields(cls):
            value = row.get(f.name)
            if f.name == "ratios":
                kwargs[f.name] = parse_ratios(value)
            elif f.name in ("source", "error"):
                kwargs[f.name] = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
            else:
                kwargs[f.name] = math.nan if value is None or value == "" else float(value)
        return cls(**kwargs)


COLUMNS = [f.name for f in fields(RatioRecord)]


@dataclass
class RecordTable:
    """The records of one search, persisted as <out_dir>/records.csv.

    `add` rewrites the whole file through a temporary file and a rename, so the file on disk is
    always a complete table (a few hundred rows: rewriting costs milliseconds, far below one
    candidate's evaluation). Thread-safe; only the collecting process writes.
    """

    path: Path
    n_layers: int | None = None
    records: list[RatioRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self._lock = threading.Lock()
        self._keys: dict[str, int] = {}

    @classmethod
    def open(cls, out_dir: str | os.PathLike, n_layers: int | None = None) -> "RecordTable":
        """Load the table in out_dir if there is one (resume), else start an empty one."""
        table = cls(Path(out_dir) / RECORDS_FILE, n_layers)
        if table.path.exists():
            try:
                df = pd.read_csv(table.path, dtype={"ratios": str, "source": str, "error": str}, keep_default_na=False)
            except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
                raise CloneError(f"{table.path}: not a records table ({exc})") from exc
            missing = [c for c in COLUMNS if c not in df.columns]
            if missing:
                raise CloneError(f"{table.path}: column {missing[0]!r} missing; expected {', '.join(COLUMNS)}")
            for i, row in enumerate(df.to_dict("records")):
                row = {k: (math.nan if v == "" and k not in ("ratios", "source", "error") else v) for k, v in row.items()}
                record = RatioRecord.from_row(row)
                if n_layers is not None and len(record.ratios) != n_layers:
                    raise CloneError(
                        f"{table.path}: row {i + 1} has {len(record.ratios)} ratios, this model has {n_layers} layers"
                    )
                table._remember(record)
        return table

    def _remember(self, record: RatioRecord) -> None:
        self._keys[record.key] = len(self.records)
        self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, ratios: Sequence[float] | str) -> bool:
        return (ratios if isinstance(ratios, str) else ratio_key(ratios)) in self._keys

    def get(self, ratios: Sequence[float] | str) -> RatioRecord | None:
        i = self._keys.get(ratios if isinstance(ratios, str) else ratio_key(ratios))
        return None if i is None else self.records[i]

    def add(self, record: RatioRecord) -> None:
        """Append one finished record and persist the table atomically (temp file + rename)."""
        if self.n_layers is not None and len(record.ratios) != self.n_layers:
            raise ValueError(f"record has {len(record.ratios)} ratios, table expects {self.n_layers}")
        with self._lock:
            if record.key in self._keys:
                return
            self._remember(record)
            self._write()

    def _write(self) -> None:
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as fh:
            self.frame().to_csv(fh, index=False, float_format="%.10g")
            fh.flush()
            os.fsync(fh.fileno())

    def frame(self) -> pd.DataFrame:
        """The records as a DataFrame (ratios as the ';'-joined string column)."""
        return pd.DataFrame([r.to_row() for r in self.records], columns=COLUMNS)

    def ok_records(self, sources: Iterable[str] | None = None) -> list[RatioRecord]:
        """Records without error and with a finite score, optionally only from the given source kinds."""
        kinds = None if sources is None else set(sources)
        return [
            r for r in self.records if r.ok and (kinds is None or r.source.split(":", 1)[0] in kinds)
        ]

    def best(self, sources: Iterable[str] | None = None) -> RatioRecord | None:
        candidates = self.ok_records(sources)
        return max(candidates, key=lambda r: r.score) if candidates else None


def ratio_matrix(records: Sequence[RatioRecord]) -> np.ndarray:
    return np.array([r.ratios for r in records], dtype=float).reshape(len(records), -1)
