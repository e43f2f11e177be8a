"""The optimizer's view of the target: profile, power mode, cost model and the Eq. 1 budgets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clone.errors import CloneError
from clone.model.config import ModelConfig
from clone.optimize.recipe import Recipe
from clone.profiles import load_profile
from clone.search.score import Budget


@dataclass
class Predicted:
    ttft_s: float
    tpot_s: float
    energy_J: float

    def as_dict(self) -> dict[str, float]:
        return {"ttft_ms": self.ttft_s * 1e3, "tpot_ms": self.tpot_s * 1e3, "energy_J": self.energy_J}


class CostEvaluator:
    def __init__(self, recipe: Recipe) -> None:
        self.recipe = recipe
        self.profile = load_profile(recipe.profile)
        self.profile_name = self.profile.name
        self.is_board = getattr(self.profile, "kind", "") == "board"
        if self.is_board:
            self.mode = self.profile.mode(recipe.mode)
            self.clocks = self.profile.max_clocks(self.mode.name)
            self.app = self.profile.budget(recipe.app_class)
        else:
            import sim.costmodel  # noqa: F401  (registers the accelerator cost model)

            self.mode = None
            self.clocks = self._accelerator_clocks()
            self.app = None
        from clone.costmodel import Workload, cost_model_for

        self.model = cost_model_for(self.profile)
        self.workload = Workload(recipe.prompt_tokens, recipe.output_tokens)
        self.budget = Budget()
        self.dense: Predicted | None = None

    def _accelerator_clocks(self) -> dict[str, Any]:
        point = self.profile.point(self.recipe.mode)
        return {"point": point.name, "freq_MHz": point.freq_MHz, "voltage_V": point.voltage_V}

    def weight_memory_GB(self, fraction: float) -> float | None:
        memory = getattr(self.profile, "memory", None)
        if memory is None:
            return None
        return round(memory.usable_GB * fraction, 3)

    @staticmethod
    def bytes_per_param(config: ModelConfig, bits: int, group_size: int) -> float:
        if bits >= 16:
            return 2.0
        group = group_size or config.dim
        return bits / 8 + 4 / group  # fp16 scale and zero point per group

    def predict(self, config: ModelConfig, bits: int | None = None, group_size: int | None = None) -> Predicted:
        from clone.costmodel import CostShape

        bits = self.recipe.bits if bits is None else bits
        group = self.recipe.group_size if group_size is None else group_size
        shape = CostShape(config, weight_bits=bits, group_size=group, symmetric=self.recipe.symmetric)
        rep = self.model.predict(shape, self.workload, self.clocks)
        return Predicted(rep.ttft_s, rep.tpot_s, rep.energy_J)

    def set_budgets(self, dense: ModelConfig, reference: ModelConfig) -> None:
        """T from the profile's application class (or flags); E (unless given): the energy of the
        reference shape (uniform pruning at the target), so a candidate that spends more energy
        than the simplest baseline is penalised and one that spends less is not."""
        r = self.recipe
        self.dense = self.predict(dense, bits=16)
        ttft = r.budget_ttft_ms if r.budget_ttft_ms is not None else (self.app.ttft_ms if self.app else None)
        tpot = r.budget_tpot_ms if r.budget_tpot_ms is not None else (self.app.tpot_ms if self.app else None)
        energy = r.budget_energy_j if r.budget_energy_j is not None else self.predict(reference).energy_J
        self.budget = Budget(ttft / 1e3 if ttft else None, tpot / 1e3 if tpot else None, energy)

    def describe(self) -> dict[str, Any]:
        b = self.budget
        return {
            "profile": self.profile_name,
            "mode": self.mode.name if self.mode else None,
            "clocks": self.clocks,
            "app_class": self.app.app_class if self.app else None,
            "workload": {"prompt_tokens": self.workload.prompt_tokens, "output_tokens": self.workload.output_tokens},
            "budget": {"ttft_ms": b.ttft_s * 1e3 if b.ttft_s else None, "tpot_ms": b.tpot_s * 1e3 if b.tpot_s else None,
                       "energy_J": b.energy_J},
            "cost_model": getattr(self.model, "name", type(self.model).__name__),
        }


def check_budget_feasible(costs: CostEvaluator, fastest: Predicted) -> None:
    """A budget the user gave that no setting can meet is an input error, not a search outcome."""
    b, r = costs.budget, costs.recipe
    given = {"ttft": r.budget_ttft_ms, "tpot": r.budget_tpot_ms, "energy": r.budget_energy_j}
    for key, have, want in (("ttft", fastest.ttft_s, b.ttft_s), ("tpot", fastest.tpot_s, b.tpot_s),
                            ("energy", fastest.energy_J, b.energy_J)):
        if given[key] is not None and want is not None and have > want:
            unit = "J" if key == "energy" else "ms"
            scale = 1.0 if key == "energy" else 1e3
            raise CloneError(f"--budget-{key}-{'j' if key == 'energy' else 'ms'} {want * scale:.4g} {unit} cannot be met: "
                             f"even the smallest allowed model needs {have * scale:.4g} {unit} on {costs.profile_name}")
