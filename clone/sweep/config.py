"""Sweep configs: a YAML file naming a point kind, the grid of parameters to cross, fixed values and a
smaller `quick` variant. Everything is checked, and every point expanded and checked, before any
point runs; errors are one line naming the file, the key and what is allowed.

    name: clocks                    # table name (default: the file stem)
    kind: clocks                    # point kind (clone.sweep.kinds)
    description: ...
    grid:                           # a mapping, or a list of mappings (their union)
      profile: [jetson-orin-nano-8gb, jetson-orin-nx-16gb]   # a list of values
      gpu_MHz: all                  # a symbol the kind resolves per point (all, min, max)
      prompt_tokens: {from: 128, to: 512, step: 128}          # an inclusive range
    fixed: {model: llama-3.2-3b}    # one value each, shared by every point
    workers: 2                      # default worker count for this sweep (--workers overrides)
    plots: [clocks]                 # figures `clone plot` draws by default (default: the kind's)
    quick: {grid: ..., fixed: ..., workers: 1}   # --quick: grid replaced, fixed updated
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clone.errors import CloneError
from clone.sweep.kinds import Kind, get_kind, kind_names
from clone.sweep.kinds.base import REQUIRED, Param, PointError

TOP_KEYS = ("name", "kind", "description", "grid", "fixed", "workers", "plots", "quick")
QUICK_KEYS = ("grid", "fixed", "workers")
RANGE_KEYS = ("from", "to", "step")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Symbol:
    """A grid value the kind resolves per point, e.g. 'all' GPU clocks of that point's profile."""

    name: str


@dataclass(frozen=True)
class Point:
    id: str
    params: dict[str, Any]


@dataclass
class Variant:
    """The grid, fixed values and worker count of one mode (full or quick)."""

    grids: list[dict[str, list[Any]]]
    fixed: dict[str, Any]
    workers: int | None
    where: dict[str, str] = field(default_factory=dict)  # key -> where it was given ("grid[1]", "fixed")


@dataclass
class SweepConfig:
    path: Path
    name: str
    kind: Kind
    description: str
    full: Variant
    quick: Variant
    plots: tuple[str, ...]

    def variant(self, quick: bool) -> Variant:
        return self.quick if quick else self.full

    def table_name(self, quick: bool) -> str:
        return f"{self.name}.quick.csv" if quick else f"{self.name}.csv"


class _UniqueKeyLoader(yaml.SafeLoader):
    pass


def _no_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


class _Where:
    """Formats errors as `FILE: key.path: reason (allowed: ...)`."""

    def __init__(self, path: Path) -> None:
        self.file = str(path)

    def error(self, key: str, reason: str, allowed: str | None = None) -> CloneError:
        tail = f" (allowed: {allowed})" if allowed else ""
        return CloneError(f"{self.file}: {key}: {reason}{tail}" if key else f"{self.file}: {reason}{tail}")


def load_config(path: str | Path) -> SweepConfig:
    """Read and check a sweep config (not yet expanded: `expand_points` checks every point)."""
    p = Path(path)
    w = _Where(p)
    try:
        data = yaml.load(p.read_text(), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise CloneError(f"{p}: sweep config not found") from None
    except yaml.YAMLError as exc:
        raise CloneError(f"{p}: invalid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise w.error("", "a sweep config is a mapping (name, kind, grid, fixed, quick, ...)")
    for key in data:
        if key not in TOP_KEYS:
            raise w.error(str(key), "unknown key", ", ".join(TOP_KEYS))
    if "kind" not in data:
        raise w.error("kind", "missing", ", ".join(kind_names()))
    if data["kind"] not in kind_names():
        raise w.error("kind", f"{data['kind']!r} is not a sweep kind", ", ".join(kind_names()))
    kind = get_kind(data["kind"])
    name = data.get("name", p.stem)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise w.error("name", f"{name!r} is not a table name", "letters, digits, '_', '-', '.'")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise w.error("description", "must be text")
    if "grid" not in data:
        raise w.error("grid", "missing (a mapping of parameters to values, or a list of them)")
    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise w.error("fixed", "must be a mapping of parameters to single values")
    full = _variant(w, kind, data["grid"], {k: (v, f"fixed.{k}") for k, v in fixed.items()},
                    data.get("workers"), "")
    quick_data = data.get("quick") or {}
    if not isinstance(quick_data, dict):
        raise w.error("quick", "must be a mapping", ", ".join(QUICK_KEYS))
    for key in quick_data:
        if key not in QUICK_KEYS:
            raise w.error(f"quick.{key}", "unknown key", ", ".join(QUICK_KEYS))
    quick_fixed = quick_data.get("fixed") or {}
    if not isinstance(quick_fixed, dict):
        raise w.error("quick.fixed", "must be a mapping of parameters to single values")
    quick_grid = quick_data.get("grid", data["grid"])
    in_quick_grid = {k for g in (quick_grid if isinstance(quick_grid, list) else [quick_grid])
                     if isinstance(g, dict) for k in g}
    merged = {k: (v, f"fixed.{k}") for k, v in fixed.items() if k not in in_quick_grid}
    merged.update({k: (v, f"quick.fixed.{k}") for k, v in quick_fixed.items()})
    quick = _variant(w, kind, quick_grid, merged, quick_data.get("workers", data.get("workers")),
                     "quick." if "grid" in quick_data else "")
    plots = _plots(w, kind, data.get("plots"))
    return SweepConfig(p, name, kind, description, full, quick, plots)


def _plots(w: _Where, kind: Kind, value: Any) -> tuple[str, ...]:
    from clone.sweep.plot import PLOT_KINDS

    if value is None:
        return kind.plots
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise w.error("plots", "must be a non-empty list of plot kinds", ", ".join(PLOT_KINDS))
    for v in value:
        if v not in PLOT_KINDS:
            raise w.error("plots", f"{v!r} is not a plot kind", ", ".join(PLOT_KINDS))
    return tuple(value)


def _variant(w: _Where, kind: Kind, grid: Any, fixed: dict[str, tuple[Any, str]], workers: Any,
             prefix: str) -> Variant:
    where: dict[str, str] = {}
    if isinstance(grid, dict):
        grid_list, labels = [grid], [f"{prefix}grid"]
    elif isinstance(grid, list) and grid:
        grid_list, labels = grid, [f"{prefix}grid[{i}]" for i in range(len(grid))]
    else:
        raise w.error(f"{prefix}grid", "must be a mapping of parameters to values, or a non-empty list of them")
    fixed_vals: dict[str, Any] = {}
    for key, (value, label) in fixed.items():
        param = _param(w, kind, label, key)
        if isinstance(value, (list, dict)):
            raise w.error(label, "fixed values are single values; put ranges under grid")
        fixed_vals[key] = _value(w, label, key, value, param)
        where[key] = label
    grids = []
    for g, label in zip(grid_list, labels):
        if not isinstance(g, dict) or not g:
            raise w.error(label, "must be a non-empty mapping of parameters to values")
        parsed = {}
        for key, value in g.items():
            param = _param(w, kind, f"{label}.{key}", key)
            if key in fixed_vals:
                raise w.error(f"{label}.{key}", f"also given under {where[key]}; give it in one place")
            parsed[key] = _values(w, f"{label}.{key}", key, value, param)
            where.setdefault(key, f"{label}.{key}")
        grids.append(parsed)
    for key, param in kind.params.items():
        if param.default is REQUIRED and key not in fixed_vals and any(key not in g for g in grids):
            raise w.error(key, f"required by kind {kind.name} but missing from {prefix}grid and fixed")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise w.error(f"{prefix}workers", f"{workers!r} is not a positive integer")
    return Variant(grids, fixed_vals, workers, where)


def _param(w: _Where, kind: Kind, label: str, key: Any) -> Param:
    if key not in kind.params:
        raise w.error(label, f"unknown parameter of kind {kind.name}", ", ".join(kind.params))
    return kind.params[key]


def _values(w: _Where, label: str, key: str, value: Any, param: Param) -> list[Any]:
    if isinstance(value, list):
        if not value:
            raise w.error(label, "empty range: give at least one value")
        return [_value(w, label, key, v, param) for v in value]
    if isinstance(value, dict):
        return _range(w, label, key, value, param)
    return [_value(w, label, key, value, param)]


def _range(w: _Where, label: str, key: str, spec: dict, param: Param) -> list[Any]:
    for k in spec:
        if k not in RANGE_KEYS:
            raise w.error(f"{label}.{k}", "unknown range key", ", ".join(RANGE_KEYS))
    if param.type not in (int, float):
        raise w.error(label, f"a range needs a numeric parameter; {key} is {param.type.__name__}")
    if "from" not in spec or "to" not in spec:
        raise w.error(label, "a range needs from and to (and optionally step)")
    start, stop = (_value(w, f"{label}.{k}", key, spec[k], param) for k in ("from", "to"))
    step = _value(w, f"{label}.step", key, spec.get("step", 1), param)
    if not step > 0:
        raise w.error(f"{label}.step", f"{step!r} must be > 0")
    if start > stop:
        raise w.error(label, f"empty range: from {start} is above to {stop}")
    n = int(math.floor((stop - start) / step + 1e-9)) + 1
    vals = [start + i * step for i in range(n)]
    return [param.type(round(v, 10)) for v in vals]


def _value(w: _Where, label: str, key: str, value: Any, param: Param) -> Any:
    if isinstance(value, str) and value in param.symbols:
        return Symbol(value)
    if value is None:
        if param.default is None:
            return None
        raise w.error(label, "must not be empty")
    try:
        v = coerce(value, param.type)
    except (TypeError, ValueError):
        symbols = f" or one of {', '.join(param.symbols)}" if param.symbols else ""
        raise w.error(label, f"{value!r} is not a {param.type.__name__}{symbols}") from None
    allowed = param.allowed()
    if allowed is not None and v not in allowed:
        raise w.error(label, f"{v!r} is not allowed", ", ".join(map(str, allowed)))
    return v


def coerce(value: Any, typ: type) -> Any:
    """YAML scalars to the parameter type: 1 -> 1.0 for floats, 2.0 -> 2 for ints, no bool/number mixing."""
    if typ is bool:
        if not isinstance(value, bool):
            raise TypeError
        return value
    if isinstance(value, bool):
        raise TypeError
    if typ is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise TypeError
        return value
    if typ is float:
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TypeError
        return float(value)
    if typ is str:
        if not isinstance(value, str) or not value:
            raise TypeError
        return value
    raise TypeError


# ------------------------------------------------------------------------------ expansion
def point_id(kind: str, params: dict[str, Any]) -> str:
    """Stable id of a point: a hash of its kind and every parameter (defaults included), so a rerun
    of the same config finds its finished points whatever order they finished in."""
    text = json.dumps([kind, sorted(params.items())], default=str, separators=(",", ":"))
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def expand_points(cfg: SweepConfig, quick: bool = False) -> list[Point]:
    """Every point of the grid(s), in config order, each prepared and checked by its kind; the first
    bad value raises a CloneError naming the file and key."""
    var = cfg.variant(quick)
    w = _Where(cfg.path)
    points: list[Point] = []
    seen: set[str] = set()
    for grid in var.grids:
        entries = list(grid.items()) + [(k, [v]) for k, v in var.fixed.items()]
        concrete = [(k, vs) for k, vs in entries if not any(isinstance(v, Symbol) for v in vs)]
        symbolic = [(k, vs) for k, vs in entries if any(isinstance(v, Symbol) for v in vs)]
        for combo in itertools.product(*[vs for _, vs in concrete]):
            base = dict(zip([k for k, _ in concrete], combo))
            for params in _resolve(cfg, w, var, base, symbolic):
                full = _prepare(cfg.kind, w, var, params)
                pid = point_id(cfg.kind.name, full)
                if pid not in seen:
                    seen.add(pid)
                    points.append(Point(pid, full))
    return points


def _resolve(cfg: SweepConfig, w: _Where, var: Variant, base: dict[str, Any],
             symbolic: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """Symbolic values ('all', 'min', ...) of one point's keys, resolved by the kind once the point's
    concrete keys (profile, mode, ...) are known; a list may mix symbols and values."""
    if not symbolic:
        return [base]
    kind = cfg.kind
    prepared = _prepare(kind, w, var, base, partial=True)
    options = []
    for key, values in symbolic:
        vals: list[Any] = []
        for v in values:
            if not isinstance(v, Symbol):
                vals.append(v)
                continue
            try:
                got = kind.resolve(key, v.name, prepared) if kind.resolve else []
            except PointError as exc:
                raise _point_error(w, var, exc, prepared) from None
            if not got:
                raise w.error(var.where.get(key, key), f"{v.name!r} gives no values for {_describe(prepared)}")
            vals += [coerce(x, kind.params[key].type) for x in got]
        options.append(list(dict.fromkeys(vals)))
    return [{**base, **dict(zip([k for k, _ in symbolic], combo))} for combo in itertools.product(*options)]


def _prepare(kind: Kind, w: _Where, var: Variant, given: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    params = {k: (given[k] if k in given else (None if p.default is REQUIRED else p.default))
              for k, p in kind.params.items()}
    try:
        out = kind.prepare(dict(params))
    except PointError as exc:
        if partial and exc.key not in given:
            return params  # a symbolic key still at its default; checked once resolved
        raise _point_error(w, var, exc, params) from None
    return {k: out[k] for k in kind.params}


def _point_error(w: _Where, var: Variant, exc: PointError, params: dict[str, Any]) -> CloneError:
    return w.error(var.where.get(exc.key, exc.key), f"{exc.reason} (point {_describe(params)})", exc.allowed)


def _describe(params: dict[str, Any]) -> str:
    keys = [k for k in ("profile", "mode", "method", "model") if params.get(k) is not None]
    return ", ".join(f"{k}={params[k]}" for k in keys) or "this point"
