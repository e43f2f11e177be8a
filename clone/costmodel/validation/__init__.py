"""Published measurements the cost model is checked against (LLMCompass-style: data next to the model).

`validate()` predicts each row of published_decode.csv and returns predicted vs published decode
tokens/s with the % error; `fit_bandwidth_efficiency()` is how calibration.yaml's value was obtained.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from clone.costmodel.base import CostShape, Workload
from clone.costmodel.roofline import RooflineCostModel, RuntimeCalibration, calibration
from clone.errors import CloneError
from clone.model.config import ModelConfig
from clone.profiles import load_profile

HERE = Path(__file__).parent
ROWS_PATH = HERE / "published_decode.csv"
SHAPES_PATH = HERE / "model_shapes.yaml"


def model_shape(name: str) -> ModelConfig:
    """A ModelConfig for a named public model (model_shapes.yaml)."""
    shapes = yaml.safe_load(SHAPES_PATH.read_text())
    if name not in shapes:
        raise CloneError(f"{SHAPES_PATH}: no shape {name!r} (allowed: {', '.join(shapes)})")
    s = dict(shapes[name])
    return ModelConfig.uniform(arch="llama", name=name, **s)


def load_rows(path: Path = ROWS_PATH) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


@dataclass(frozen=True)
class ValidationRow:
    board: str
    mode: str
    runtime: str
    model: str
    published_tps: float
    predicted_tps: float
    weight_GB: float
    bound_tps: float  # weight bytes / peak bandwidth: what a perfect runtime would reach

    @property
    def error_pct(self) -> float:
        return 100.0 * (self.predicted_tps - self.published_tps) / self.published_tps


def validate(calib: RuntimeCalibration | None = None, rows: list[dict[str, str]] | None = None) -> list[ValidationRow]:
    cal = calib or calibration()
    out = []
    for r in rows or load_rows():
        profile = load_profile(r["profile"])
        model = RooflineCostModel(profile, mode=r["mode"], calib=cal)
        shape = CostShape(model_shape(r["shape"]), weight_bits=int(r["weight_bits"]),
                          group_size=int(r["group_size"]), symmetric=r["symmetric"] == "true",
                          head_bits=int(r["head_bits"]))
        clocks = profile.max_clocks(r["mode"])
        rep = model.predict(shape, Workload(int(r["prompt_tokens"]), int(r["output_tokens"])), clocks)
        one = model.forward_pass(shape, 1, int(r["prompt_tokens"]), clocks)
        bound = model.bandwidth_Bps(clocks["emc_MHz"]) / one.bytes
        out.append(ValidationRow(r["board"], r["power_mode"], r["runtime"], r["model"],
                                 float(r["decode_tokens_per_s"]), rep.decode_tokens_per_s, one.bytes / 1e9, bound))
    return out


def fit_bandwidth_efficiency(base: RuntimeCalibration | None = None) -> tuple[float, list[ValidationRow]]:
    """Bandwidth efficiency minimising the mean squared log error over the published rows."""
    cal = base or calibration()
    lo, hi = 0.3, 1.0
    loss = lambda eta: sum(math.log(v.predicted_tps / v.published_tps) ** 2  # noqa: E731
                           for v in validate(cal.replace(bandwidth_efficiency=eta)))
    for _ in range(40):  # golden-section search (the loss is unimodal in eta)
        a, b = hi - 0.618 * (hi - lo), lo + 0.618 * (hi - lo)
        if loss(a) < loss(b):
            hi = b
        else:
            lo = a
    eta = round((lo + hi) / 2, 3)
    return eta, validate(cal.replace(bandwidth_efficiency=eta))
