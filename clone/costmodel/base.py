"""What a cost model is: the `t_i`, `e_i` of the paper's Eq. 1 for one model shape on one target.

One interface serves the optimizer (score a pruned, quantized shape against a profile's budgets) and
the simulated board (advance a virtual clock layer by layer). Boards get the roofline model
(clone.costmodel.roofline); the accelerator gets whatever the hardware simulator registers through
`register_cost_model` (see `cost_model_for`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

from clone.errors import CloneError
from clone.model.config import LayerShape, ModelConfig

WEIGHT_BITS = (16, 8, 4)


@dataclass(frozen=True)
class CostShape:
    """A model as the hardware sees it: per-layer shapes plus storage precision.

    weight_bits applies to the decoder projections; head_bits to the output projection (lm_head),
    which weight-only quantizers usually leave at 16 bits. group_size 0 means one scale per output
    row (per-channel). Each group stores an fp16 scale, and an fp16 zero point when asymmetric.
    """

    config: ModelConfig
    weight_bits: int = 16
    group_size: int = 128
    symmetric: bool = False
    head_bits: int = 16
    kv_bits: int = 16
    act_bits: int = 16

    def __post_init__(self) -> None:
        for key in ("weight_bits", "head_bits"):
            if getattr(self, key) not in WEIGHT_BITS:
                raise CloneError(f"cost shape: {key} {getattr(self, key)} is not supported "
                                 f"(allowed: {', '.join(map(str, WEIGHT_BITS))})")
        if self.group_size < 0:
            raise CloneError(f"cost shape: group_size {self.group_size} must be >= 0 (0 = per-channel)")

    def bits_per_weight(self, bits: int, in_features: int) -> float:
        """Stored bits per weight including the group scales (and zero points)."""
        if bits >= 16:
            return 16.0
        group = self.group_size or in_features
        meta = 16 if self.symmetric else 32
        return bits + meta / group

    @property
    def layers(self) -> list[LayerShape]:
        return self.config.layers

    @property
    def n_layers(self) -> int:
        return self.config.n_layers

    def key(self) -> tuple:
        """Hashable identity, for caching per-shape work tables."""
        c = self.config
        return (c.dim, c.head_dim, c.vocab_size, c.tie_embeddings, c.qkv_bias, tuple(c.layers),
                self.weight_bits, self.group_size, self.symmetric, self.head_bits, self.kv_bits,
                self.act_bits)

    @classmethod
    def from_model_dir(cls, directory: str | Path) -> "CostShape":
        """Read shapes and the quantization record from a clone model directory's config.json."""
        path = Path(directory) / "config.json"
        try:
            raw = json.loads(path.read_text())
            config = ModelConfig.from_dict(raw["model"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CloneError(f"{path}: not a clone model config ({exc})") from None
        return cls.from_config(config, raw.get("quantization"))

    @classmethod
    def from_config(cls, config: ModelConfig, quantization: dict | None = None) -> "CostShape":
        if not quantization:
            return cls(config)
        modules = quantization.get("modules", {})
        specs = [m for n, m in modules.items() if n != "lm_head"]
        if not specs:
            return cls(config)
        s = specs[0]
        head = modules.get("lm_head", {}).get("bits", 16)
        return cls(config, weight_bits=int(s["bits"]), group_size=int(s["group_size"]),
                   symmetric=bool(s.get("symmetric", False)), head_bits=int(head))


@dataclass(frozen=True)
class Workload:
    """One request at batch 1: prompt length and number of generated tokens."""

    prompt_tokens: int
    output_tokens: int
    batch: int = 1

    def __post_init__(self) -> None:
        if self.prompt_tokens < 1 or self.output_tokens < 1:
            raise CloneError(f"workload: prompt_tokens and output_tokens must be >= 1, got "
                             f"{self.prompt_tokens} and {self.output_tokens}")
        if self.batch != 1:
            raise CloneError(f"workload: batch {self.batch} is not supported (allowed: 1)")


@dataclass(frozen=True)
class StepCost:
    """Cost of one kernel group (a layer, or the embedding + output head) for one forward pass."""

    time_s: float
    energy_J: float
    flops: float
    bytes: float
    compute_s: float  # time at the compute roof
    memory_s: float  # time at the bandwidth roof
    host_s: float  # launch / dispatch time on the CPU
    gpu_util: float
    emc_util: float
    cpu_util: float
    gpu_busy: float = 0.0  # fraction of the step with a kernel running (what the GPU load counter shows)

    @property
    def power_W(self) -> float:
        return self.energy_J / self.time_s if self.time_s > 0 else 0.0

    @property
    def bound(self) -> str:
        roofs = {"compute": self.compute_s, "memory": self.memory_s, "host": self.host_s}
        return max(roofs, key=roofs.get)


@dataclass
class PhaseCost:
    phase: str
    time_s: float = 0.0
    energy_J: float = 0.0
    flops: float = 0.0
    bytes: float = 0.0
    layers: list[StepCost] = field(default_factory=list)  # per decoder layer (prefill only)

    def add(self, step: StepCost) -> None:
        self.time_s += step.time_s
        self.energy_J += step.energy_J
        self.flops += step.flops
        self.bytes += step.bytes

    @property
    def power_W(self) -> float:
        return self.energy_J / self.time_s if self.time_s > 0 else 0.0


@dataclass
class CostReport:
    """Predicted latency and energy of one request (TTFT = prefill, TPOT = mean decode step)."""

    workload: Workload
    clocks: dict[str, float]
    prefill: PhaseCost
    decode: PhaseCost
    tpot_first_s: float
    tpot_last_s: float

    @property
    def ttft_s(self) -> float:
        return self.prefill.time_s

    @property
    def decode_steps(self) -> int:
        return max(self.workload.output_tokens - 1, 0)

    @property
    def tpot_s(self) -> float:
        return self.decode.time_s / self.decode_steps if self.decode_steps else self.tpot_first_s

    @property
    def e2e_s(self) -> float:
        return self.prefill.time_s + self.decode.time_s

    @property
    def energy_J(self) -> float:
        return self.prefill.energy_J + self.decode.energy_J

    @property
    def decode_tokens_per_s(self) -> float:
        return 1.0 / self.tpot_s if self.tpot_s > 0 else float("inf")

    def as_dict(self) -> dict:
        return {
            "prompt_tokens": self.workload.prompt_tokens, "output_tokens": self.workload.output_tokens,
            **self.clocks, "ttft_ms": self.ttft_s * 1e3, "tpot_ms": self.tpot_s * 1e3,
            "tpot_first_ms": self.tpot_first_s * 1e3, "tpot_last_ms": self.tpot_last_s * 1e3,
            "e2e_s": self.e2e_s, "prefill_J": self.prefill.energy_J, "decode_J": self.decode.energy_J,
            "energy_J": self.energy_J, "prefill_W": self.prefill.power_W, "decode_W": self.decode.power_W,
        }


@runtime_checkable
class CostModel(Protocol):
    """Anything that predicts a request's latency and energy on one target.

    `predict` is what the optimizer needs. The simulated board also needs `step` (one forward pass
    of one layer, or of the head with layer=None, at given clocks and co-runner slowdowns) and
    `idle_power_W`; a model without them can still score shapes but cannot drive the simulator.
    """

    name: str

    def predict(self, shape: CostShape, workload: Workload, clocks: dict[str, float]) -> CostReport: ...


CostModelFactory = Callable[[object], CostModel]
_REGISTRY: dict[str, CostModelFactory] = {}


def register_cost_model(kind: str, factory: CostModelFactory) -> None:
    """Hook for other cost models: sim/ calls register_cost_model("accelerator", factory) so that
    cost_model_for(<accelerator profile>) returns the hardware simulator's model."""
    _REGISTRY[kind] = factory


def load_accelerator_model() -> None:
    """Import sim/, which registers the cycle-level simulator as the accelerator's cost model; a user
    asking for the accelerator profile should not have to know that import."""
    try:
        import sim.costmodel  # noqa: F401
    except ImportError:  # sim/ not installed beside clone: cost_model_for says what is missing
        pass


def cost_model_for(profile: object, runtime: str | None = None) -> CostModel:
    """The cost model for a loaded profile: the roofline model for boards, the registered simulator
    model for the accelerator (sim/ registers it when imported, which happens here on first use)."""
    kind = getattr(profile, "kind", None)
    if kind == "accelerator" and kind not in _REGISTRY:
        load_accelerator_model()
    if kind in _REGISTRY:
        return _REGISTRY[kind](profile)
    if kind == "board":
        from clone.costmodel.roofline import RooflineCostModel

        return RooflineCostModel(profile, runtime=runtime)
    if kind == "accelerator":
        raise CloneError(
            f"profile {getattr(profile, 'name', '?')}: no cost model for the accelerator: the hardware "
            "simulator package sim/ is not importable; install it beside clone or register a model with "
            "clone.costmodel.register_cost_model('accelerator', factory)")
    raise CloneError(f"profile {getattr(profile, 'name', profile)!r}: unknown kind {kind!r} "
                     "(allowed: board, accelerator)")
