"""The learned DVFS controller: a 2-layer MLP (7 -> 32 -> K, under 1K parameters) from the request state
to one of K clock settings (GPU, EMC, CPU together: a joint index over the power table's pruned,
Pareto-optimal settings of both phases plus max clocks; a per-phase mask keeps each phase to its own
candidates plus max). It decides at request start (prefill clocks, from the state at arrival, so it
runs alongside prefill), at the prefill/decode boundary, and during decode at token granularity: every
DECODE_EVERY tokens or when the co-runner load changes.

State (docs/dvfs.md): co-runner load, phase, TTFT target and TPOT target (as log2 ratios to the
model's time at max clocks without interference), predicted output length, progress through it, and
the current slack (budget left over the predicted tokens left, as a log2 ratio to the time at max
clocks). Targets that no setting can meet under the current load (by the board's slowdown-per-load
estimate) get the fastest setting and are counted in `infeasible` rather than raising.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clone.atomic import write_text_atomic
from clone.dvfs.length import LengthPredictor
from clone.errors import CloneError
from clone.runtime.device import DOMAINS, Clocks

N_FEATURES = 7
HIDDEN = 32
DECODE_EVERY = 8
SHIELD_MARGIN = 0.15
FORMAT = "clone-dvfs-controller/1"


@dataclass
class SpeedRef:
    """Time at max clocks without interference: prefill(P) = a + b P + c P^2, decode token(kv) = d + e kv
    (fitted on the cost model at training time), and the slowdown per unit co-runner load."""

    prefill: tuple[float, float, float]
    decode: tuple[float, float]
    slowdown_per_load: float = 1.9

    def prefill_s(self, P: int) -> float:
        a, b, c = self.prefill
        return max(a + b * P + c * P * P, 1e-4)

    def token_s(self, kv: int) -> float:
        d, e = self.decode
        return max(d + e * kv, 1e-5)


def fit_speed_ref(board: Any) -> SpeedRef:
    """Fit SpeedRef on a FastBoard at the mode's max clocks, no load."""
    top = Clocks(*(board.available_MHz(d)[-1] for d in DOMAINS))
    Ps = np.array([8, 32, 64, 128, 256, 512, 1024])
    tp = np.array([board.pass_cost(top, 0.0, int(p), 0)[0] for p in Ps])
    kvs = np.array([16, 128, 512, 1024])
    td = np.array([board.pass_cost(top, 0.0, 1, int(k))[0] for k in kvs])
    pc = np.polyfit(Ps, tp, 2)[::-1]
    dc = np.polyfit(kvs, td, 1)[::-1]
    coef = getattr(getattr(board, "interference", None), "spec", None)
    return SpeedRef(tuple(float(x) for x in pc), tuple(float(x) for x in dc),
                    float(getattr(coef, "compute_coef", 1.9)))


def shape_key(shape: Any) -> list:
    """What the speed references depend on: layers, width, FFN widths, weight bits."""
    c = shape.config
    return [shape.n_layers, c.dim, sum(s.ffn_dim for s in c.layers), c.vocab_size, shape.weight_bits]


class MLP:
    def __init__(self, n_actions: int, hidden: int = HIDDEN, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.W1 = rng.normal(0, 1 / math.sqrt(N_FEATURES), (N_FEATURES, hidden))
        self.b1 = np.zeros(hidden)
        self.W2 = rng.normal(0, 0.1 / math.sqrt(hidden), (hidden, n_actions))
        self.b2 = np.zeros(n_actions)

    @property
    def params(self) -> list[np.ndarray]:
        return [self.W1, self.b1, self.W2, self.b2]

    def n_params(self) -> int:
        return sum(p.size for p in self.params)

    def logits(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = np.tanh(x @ self.W1 + self.b1)
        return h @ self.W2 + self.b2, h

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("W1", "b1", "W2", "b2")}

    @classmethod
    def from_dict(cls, d: dict, n_actions: int) -> "MLP":
        m = cls(n_actions)
        for k in ("W1", "b1", "W2", "b2"):
            a = np.asarray(d[k], float)
            if a.shape != getattr(m, k).shape or not np.all(np.isfinite(a)):
                raise ValueError(f"{k} has shape {a.shape}, expected {getattr(m, k).shape}")
            setattr(m, k, a)
        return m


@dataclass
class ControllerSpec:
    profile: str
    mode: str
    actions: list[tuple[float, float, float]]
    prefill_mask: list[bool]
    decode_mask: list[bool]
    speed: SpeedRef
    mlp: MLP
    predictor: LengthPredictor | None = None
    meta: dict = field(default_factory=dict)
    # Per action: reference-workload time over the time at max clocks (power table), per phase. The
    # shield uses them to skip a setting its own estimate already says is too slow.
    slow_prefill: list[float] = field(default_factory=list)
    slow_decode: list[float] = field(default_factory=list)

    def save(self, directory: str | os.PathLike) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        body = {"format": FORMAT, "profile": self.profile, "mode": self.mode, "actions": self.actions,
                "prefill_mask": self.prefill_mask, "decode_mask": self.decode_mask,
                "speed": {"prefill": self.speed.prefill, "decode": self.speed.decode,
                          "slowdown_per_load": self.speed.slowdown_per_load},
                "mlp": self.mlp.to_dict(), "n_params": self.mlp.n_params(), "meta": self.meta,
                "slow_prefill": self.slow_prefill, "slow_decode": self.slow_decode}
        write_text_atomic(d / "controller.json", json.dumps(body))
        if self.predictor is not None:
            self.predictor.save(d / "length_predictor.json")
        return d / "controller.json"


def load_controller(directory: str | os.PathLike, profile: Any = None, mode: str | None = None) -> ControllerSpec:
    """MODEL_DIR/dvfs/ (or the dvfs directory itself) -> ControllerSpec; one-line CloneError when the
    file is missing, corrupt, or trained for another profile/mode."""
    d = Path(directory)
    if (d / "dvfs" / "controller.json").exists() or not (d / "controller.json").exists() and (d / "dvfs").is_dir():
        d = d / "dvfs"
    path = d / "controller.json"
    if not path.exists():
        raise CloneError(f"{path}: no DVFS controller (train one with clone train-dvfs --profile PROFILE --out MODEL_DIR)")
    try:
        raw = json.loads(path.read_text())
        if raw.get("format") != FORMAT:
            raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT}")
        actions = [tuple(float(x) for x in a) for a in raw["actions"]]
        if not actions or any(len(a) != 3 for a in actions):
            raise ValueError("actions must be [gpu_MHz, emc_MHz, cpu_MHz] triples")
        pm, dm = [bool(x) for x in raw["prefill_mask"]], [bool(x) for x in raw["decode_mask"]]
        if len(pm) != len(actions) or len(dm) != len(actions) or not any(pm) or not any(dm):
            raise ValueError("masks do not match the actions")
        sp = raw["speed"]
        speed = SpeedRef(tuple(float(x) for x in sp["prefill"]), tuple(float(x) for x in sp["decode"]),
                         float(sp["slowdown_per_load"]))
        mlp = MLP.from_dict(raw["mlp"], len(actions))
        slow_p = [float(x) for x in raw.get("slow_prefill", [1.0] * len(actions))]
        slow_d = [float(x) for x in raw.get("slow_decode", [1.0] * len(actions))]
        if len(slow_p) != len(actions) or len(slow_d) != len(actions):
            raise ValueError("slow_prefill/slow_decode do not match the actions")
        spec = ControllerSpec(str(raw["profile"]), str(raw["mode"]), actions, pm, dm, speed, mlp, None,
                              raw.get("meta", {}), slow_p, slow_d)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CloneError(f"{path}: corrupt DVFS controller ({exc})") from None
    pred = d / "length_predictor.json"
    if pred.exists():
        spec.predictor = LengthPredictor.load(pred)
    if profile is not None:
        m = profile.mode(mode).name
        if spec.profile != profile.name or spec.mode.lower() != m.lower():
            raise CloneError(f"{path}: trained for {spec.profile} mode {spec.mode}, not {profile.name} mode {m} "
                             f"(retrain with clone train-dvfs --profile {profile.name} --mode {m})")
    return spec


def _clip(x: float, lo: float = -2.0, hi: float = 6.0) -> float:
    return min(max(x, lo), hi)


class ControllerPolicy:
    """The controller as a clock Policy (clone.runtime.policies): `clone deploy --policy clone`."""

    events = ("request_start", "prefill_end", "token")

    def __init__(self, spec: ControllerSpec, use_true_length: bool = False, sample: bool = False,
                 rng: np.random.Generator | None = None) -> None:
        self.spec = spec
        self.name = "clone-true-length" if use_true_length else "clone"
        self.use_true_length = use_true_length
        self.sample = sample
        self.rng = rng or np.random.default_rng(0)
        self.actions = [Clocks(*a) for a in spec.actions]
        self.masks = {"prefill": np.array(spec.prefill_mask), "decode": np.array(spec.decode_mask)}
        self.fastest = int(np.argmax([a[0] * 1e6 + a[1] * 1e2 + a[2] * 1e-3 for a in spec.actions]))
        self.trajectory: list[tuple[str, np.ndarray, np.ndarray, int]] = []
        self.infeasible = 0
        self.decision_s: list[float] = []
        self._n_pred = 1
        self._P = 0
        self._last_load: float | None = None
        self._last_idx: int | None = None
        self._warned = False
        self._warned_shape = False

    def bind(self, board: Any) -> None:
        prof = getattr(board, "profile", None)
        mode = getattr(getattr(board, "mode", None), "name", None)
        if prof is not None and (prof.name != self.spec.profile or (mode and mode.lower() != self.spec.mode.lower())):
            raise CloneError(f"DVFS controller trained for {self.spec.profile} mode {self.spec.mode}, but the board is "
                             f"{prof.name} mode {mode} (retrain with clone train-dvfs --profile {prof.name})")
        want, shape = self.spec.meta.get("shape_key"), getattr(board, "shape", None)
        if want is not None and shape is not None and list(want) != shape_key(shape) and not self._warned_shape:
            warnings.warn(f"DVFS controller was trained for another model shape ({self.spec.meta.get('shape', want)}); "
                          "its latency estimates will be off (retrain with clone train-dvfs --out MODEL_DIR)",
                          stacklevel=2)
            self._warned_shape = True
        for a in self.spec.actions:
            for dname, f in zip(DOMAINS, a):
                if not any(abs(f - x) < 1e-3 for x in board.available_MHz(dname)):
                    raise CloneError(f"DVFS controller: {dname} {f:g} MHz is not listed by {board.name}")

    # ---------------------------------------------------------------- state
    def predicted_length(self, state: Any) -> int:
        true_n = getattr(state, "true_output_tokens", None) or state.expected_output_tokens
        if self.use_true_length and true_n:
            return int(true_n)
        if self.spec.predictor is not None:
            return self.spec.predictor.predict(getattr(state, "prompt", None), self._P, state.app_class,
                                               state.max_new_tokens)
        return max(1, state.max_new_tokens // 2)

    def features(self, state: Any, phase: str) -> tuple[np.ndarray, bool]:
        """(feature vector, feasible) for a decision."""
        sp, P = self.spec.speed, self._P
        load = state.co_runner_load or 0.0
        slow = 1.0 + sp.slowdown_per_load * load
        n = self._n_pred
        t_pre, t_tok = sp.prefill_s(P), sp.token_s(P)
        ttft_t = (state.ttft_target_ms or 1e9) / 1e3
        tpot_t = (state.tpot_target_ms or 1e9) / 1e3
        k = state.token_index
        if phase == "prefill":
            slack_s, per = ttft_t - state.elapsed_s, t_pre
            feasible = slack_s >= t_pre * slow
            progress = 0.0
        else:
            slack_s, per = self._decode_slack(state), sp.token_s(P + k)
            feasible = slack_s >= per * slow
            progress = min(k / max(n, 1), 2.0)
        slack = _clip(math.log2(max(slack_s, 1e-6) / per))
        x = np.array([load, 1.0 if phase == "decode" else 0.0, _clip(math.log2(ttft_t / t_pre)) / 4,
                      _clip(math.log2(tpot_t / t_tok)) / 4, math.log(max(n, 1)) / math.log(256), progress, slack / 4])
        return x, feasible

    def _shield(self, phase: str, state: Any) -> np.ndarray:
        """Actions whose estimated time (reference time x the action's slowdown x the co-runner's
        slowdown at the current load, plus SHIELD_MARGIN) fits the slack; max clocks always passes."""
        slow = self.spec.slow_prefill if phase == "prefill" else self.spec.slow_decode
        if not slow:
            return np.ones(len(self.actions), bool)
        sp, P = self.spec.speed, self._P
        load = 1.0 + sp.slowdown_per_load * (state.co_runner_load or 0.0)
        if phase == "prefill":
            budget = (state.ttft_target_ms or 1e12) / 1e3 - state.elapsed_s
            ref = sp.prefill_s(P)
        else:
            budget, ref = self._decode_slack(state), sp.token_s(P + state.token_index)
        ok = np.array([ref * f * load * (1 + SHIELD_MARGIN) <= budget for f in slow])
        ok[self.fastest] = True
        return ok

    def _decode_slack(self, state: Any) -> float:
        """Seconds per remaining decode step that keep mean TPOT on target over the predicted length."""
        n, k = self._n_pred, state.token_index
        tpot_t = (state.tpot_target_ms or 1e12) / 1e3
        dec_elapsed = state.elapsed_s - (state.ttft_s or 0.0)
        steps_total = max(n, k + 1) - 1
        left = max(steps_total - max(k - 1, 0), 1)
        return (tpot_t * max(steps_total, 1) - dec_elapsed) / left

    # ---------------------------------------------------------------- decisions
    def decide(self, state: Any) -> Clocks | None:
        t0 = time.perf_counter()
        ev = state.event
        if ev == "request_start":
            from clone.dvfs.episode import prompt_tokens_of

            self._P = prompt_tokens_of(state)
            self._n_pred = self.predicted_length(state)
        elif state.prompt_tokens and state.prompt_tokens != self._P:  # deploy tokenizes after request_start
            self._P = state.prompt_tokens
            self._n_pred = self.predicted_length(state)
        if ev == "request_start":
            phase = "prefill"
        elif ev == "prefill_end":
            phase = "decode"
        else:
            load = state.co_runner_load
            if state.token_index % DECODE_EVERY and load == self._last_load:
                return None
            phase = "decode"
        self._last_load = state.co_runner_load
        x, feasible = self.features(state, phase)
        if not feasible:
            self.infeasible += 1
            if not self._warned:
                warnings.warn(f"DVFS: request targets cannot be met under the current load; using the fastest "
                              f"setting {self.spec.actions[self.fastest]} (the miss is reported)", stacklevel=2)
                self._warned = True
            idx = self.fastest
        else:
            z, _ = self.spec.mlp.logits(x)
            mask = self.masks[phase] & self._shield(phase, state)
            z = np.where(mask, z, -np.inf)
            if self.sample:
                p = np.exp(z - z.max())
                p /= p.sum()
                idx = int(self.rng.choice(len(p), p=p))
                self.trajectory.append((phase, x, mask, idx))
            else:
                idx = int(np.argmax(z))
        self._last_idx = idx
        self.decision_s.append(time.perf_counter() - t0)
        new = self.actions[idx]
        return None if new == state.clocks else new
