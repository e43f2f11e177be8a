"""28 nm area of an accelerator instance without re-running synthesis, for array-size sweeps.

Logic: the committed asic28 synthesis (sim/data/area_28nm.yaml) with the MAC array scaled by
(N / 16)^2 and every other block fixed; memories: the buffer and eNVM macros from their bit counts,
with the same assumptions as `python -m hw.build synth` (hw.build.AREA_ASSUMPTIONS, memory_table),
so the asic28 instance reproduces the synthesis table's total (0.804 mm^2).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from clone.errors import CloneError
from hw.params import AccelParams

AREA_FILE = Path(__file__).resolve().parent / "data" / "area_28nm.yaml"


@dataclass(frozen=True)
class Area:
    array_mm2: float
    other_logic_mm2: float
    memory_mm2: float

    @property
    def total_mm2(self) -> float:
        return self.array_mm2 + self.other_logic_mm2 + self.memory_mm2


@lru_cache(maxsize=2)
def _data(path: str = str(AREA_FILE)) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
        fixed = {k: float(v) for k, v in data["fixed_GE"].items() if k.endswith("_GE")}
        return {"n": int(data["reference_n"]), "array": float(data["mac_array_GE"]), "fixed": fixed}
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise CloneError(f"{path}: bad area table ({exc.__class__.__name__}: {exc})") from None


def area(p: AccelParams) -> Area:
    from hw.build import AREA_ASSUMPTIONS, memory_table

    d = _data()
    um2 = AREA_ASSUMPTIONS["um2_per_GE_placed"]
    array_ge = d["array"] * (p.n / d["n"]) ** 2
    memory = sum(mm2 for _, _, mm2 in memory_table(p))
    return Area(array_ge * um2 / 1e6, sum(d["fixed"].values()) * um2 / 1e6, memory)
