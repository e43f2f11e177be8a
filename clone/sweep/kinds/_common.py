"""Parameter helpers shared by kinds: board profiles, their power modes and clock tables, model shapes."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from clone.errors import CloneError
from clone.sweep.kinds.base import PointError, fmt_values

DOMAINS = {"gpu_MHz": "gpu", "emc_MHz": "emc", "cpu_MHz": "cpu"}
CLOCK_SYMBOLS = ("all", "min", "max")


@lru_cache(maxsize=None)
def profile(name: str) -> Any:
    from clone.profiles import load_profile

    return load_profile(name)


def profile_names() -> tuple[str, ...]:
    from clone.profiles import list_profiles

    return tuple(list_profiles())


def board_names() -> tuple[str, ...]:
    return tuple(n for n in profile_names() if getattr(profile(n), "kind", "") == "board")


def check_profile(name: Any, key: str = "profile", kinds: tuple[str, ...] = ("board",)) -> Any:
    allowed = [n for n in profile_names() if getattr(profile(n), "kind", "") in kinds]
    if name not in allowed:
        raise PointError(key, f"{name!r} is not a {' or '.join(kinds)} profile", ", ".join(allowed))
    return profile(name)


def check_mode(prof: Any, mode: Any) -> str:
    """The profile's default mode when None; else a mode the profile defines."""
    if mode is None:
        return prof.mode().name
    if mode not in prof.mode_names:
        raise PointError("mode", f"{mode!r} is not a power mode of {prof.name}", ", ".join(prof.mode_names))
    return str(mode)


def clock_values(prof: Any, mode: str, key: str, symbol: str) -> list[float]:
    choices = list(prof.clock_choices(DOMAINS[key], mode))
    return {"all": choices, "min": choices[:1], "max": choices[-1:]}[symbol]


def check_clock(prof: Any, mode: str, key: str, value: Any) -> float:
    """The mode's top clock when None; else one of the clocks the board lists under the mode's cap."""
    choices = prof.clock_choices(DOMAINS[key], mode)
    if value is None:
        return float(choices[-1])
    if float(value) not in choices:
        raise PointError(key, f"{value:g} is not a {DOMAINS[key].upper()} clock of {prof.name} mode {mode}",
                         fmt_values(choices))
    return float(value)


@lru_cache(maxsize=None)
def model_config(name: str) -> Any:
    """A model shape without weights: a public shape from the cost model's model_shapes.yaml, or a
    built-in / directory / GGUF model (config only)."""
    from clone.costmodel.validation import SHAPES_PATH, model_shape

    import yaml

    if name in yaml.safe_load(SHAPES_PATH.read_text()):
        return model_shape(name)
    from sim.workload import resolve_model

    return resolve_model(name)


def check_model(name: Any, key: str = "model") -> Any:
    try:
        return model_config(str(name))
    except CloneError as exc:
        from clone.costmodel.validation import SHAPES_PATH

        import yaml

        shapes = ", ".join(yaml.safe_load(SHAPES_PATH.read_text()))
        raise PointError(key, f"{name!r} is not a model shape ({exc})", f"{shapes}, smollm2-135m") from None


def positive(params: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if not params[key] > 0:
            raise PointError(key, f"{params[key]!r} must be > 0")
