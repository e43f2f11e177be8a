"""What a point kind is: its parameters (with types, defaults and allowed values), its result
columns, and the function that computes one point.

A kind is data plus three functions, so the runner can stay generic:
- `prepare(params)` fills values that depend on other parameters (a profile's default mode, the
  top clock of that mode) and checks values that only make sense together (a GPU clock the profile
  does not list). It runs for every point before any point runs, so a bad sweep fails in seconds.
- `resolve(key, symbol, params)` turns a symbolic grid value ("all", "min", "max") into concrete
  values for one partially expanded point (every GPU clock *of that profile*).
- `run(params, ctx)` computes one point and returns its result columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

REQUIRED = object()  # sentinel default: the parameter must be given


class PointError(ValueError):
    """A parameter value that is wrong for this point: which key, why, and what is allowed."""

    def __init__(self, key: str, reason: str, allowed: str | None = None) -> None:
        super().__init__(reason)
        self.key, self.reason, self.allowed = key, reason, allowed


@dataclass(frozen=True)
class Param:
    type: type  # str, int, float or bool
    default: Any = REQUIRED
    choices: tuple | Callable[[], tuple] | None = None  # allowed values (a callable is evaluated lazily)
    symbols: tuple[str, ...] = ()  # symbolic grid values the kind resolves per point ("all", "min", ...)
    doc: str = ""

    def allowed(self) -> tuple | None:
        return self.choices() if callable(self.choices) else self.choices


@dataclass(frozen=True)
class PointContext:
    """Where a point may keep files of its own (e.g. the ratio search's records, so it resumes too)."""

    work_dir: Path
    point_id: str


@dataclass(frozen=True)
class Kind:
    name: str
    params: dict[str, Param]
    results: tuple[str, ...]  # result columns, in table order
    run: Callable[[dict[str, Any], PointContext], dict[str, Any]]
    plots: tuple[str, ...]  # plot kinds `clone plot` draws from a table of this kind by default
    prepare: Callable[[dict[str, Any]], dict[str, Any]] = field(default=lambda p: p)
    resolve: Callable[[str, str, dict[str, Any]], list[Any]] | None = None
    doc: str = ""


def choice(key: str, value: Any, allowed: tuple | list) -> None:
    if value not in allowed:
        raise PointError(key, f"{value!r} is not allowed", ", ".join(map(str, allowed)))


def fmt_values(values: Any) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)
