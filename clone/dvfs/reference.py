"""Reference policies the controller is measured against (besides max clocks and the governor in
clone.runtime.policies):

- OraclePolicy: knows each request's true output length and the co-runner's future load, and picks,
  per request and phase, the least-energy setting of the whole power-table grid that meets the phase's
  target (TTFT for prefill, mean TPOT for decode), by simulating every setting on the fast board
  (exhaustive search; the setting then stays for the phase). When no setting meets a target it takes
  the fastest one. It is the limit for phase-constant clocks (a policy that switches inside decode
  could do better).
- best_fixed_clocks: the one setting for a whole trace that meets the most targets, least energy among
  those.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from clone.atomic import write_text_atomic
from clone.dvfs.episode import FastBoard, Outcome, prompt_tokens_of, run_trace, summarize
from clone.dvfs.powertable import Setting
from clone.errors import CloneError
from clone.runtime.device import Clocks
from clone.runtime.policies import StaticPolicy
from clone.runtime.traces import TraceRequest


class OraclePolicy:
    name = "oracle"
    events = ("request_start", "prefill_end")

    def __init__(self, settings: Sequence[Setting], fast: FastBoard | None = None) -> None:
        self.settings = [Clocks(*s) for s in settings]
        self.fast = fast
        self.misses = 0

    def bind(self, board: Any) -> None:
        if isinstance(board, FastBoard):
            self.fast = board
        elif self.fast is None and getattr(board, "shape", None) is not None:
            # The simulated board: search on a fast board with the same profile, cost model and co-runner.
            self.fast = FastBoard(board.profile, board.shape, board.mode.name, board.interference)

    def _fast(self, state: Any) -> FastBoard:
        if self.fast is None:
            raise CloneError("oracle policy: needs the simulated board (it reads the co-runner's future load)")
        return self.fast

    def _search(self, cur: Clocks, t: float, run: Any, target_s: float | None) -> Clocks:
        b = self._fast(None)
        best = None
        fastest = None
        for s in self.settings:
            dt, e = b.switch_cost(cur, s, b.interference.load_at(t))
            time_s, energy = run(s, t + dt)
            time_s += dt
            energy += e
            if fastest is None or time_s < fastest[0]:
                fastest = (time_s, s)
            if (target_s is None or time_s <= target_s) and (best is None or energy < best[0]):
                best = (energy, s)
        if best is None:
            self.misses += 1
            return fastest[1]  # type: ignore[index]
        return best[1]

    def decide(self, state: Any) -> Clocks | None:
        b = self._fast(state)
        load_at = b.interference.load_at
        P = prompt_tokens_of(state)
        if state.event == "request_start":
            def prefill(s: Clocks, t: float) -> tuple[float, float]:
                dt, e, _, _ = b.pass_cost(s, load_at(t), P, 0)
                return dt, e
            target = None if state.ttft_target_ms is None else state.ttft_target_ms / 1e3 - state.elapsed_s
            new = self._search(state.clocks, state.now_s, prefill, target)
        elif state.event == "prefill_end":
            n = getattr(state, "true_output_tokens", None) or state.expected_output_tokens or state.max_new_tokens
            if n < 2:
                return None

            def decode(s: Clocks, t: float) -> tuple[float, float]:
                tt = ee = 0.0
                for k in range(n - 1):
                    dt, e, _, _ = b.pass_cost(s, load_at(t + tt), 1, P + k)
                    tt += dt
                    ee += e
                return tt, ee
            target = None if state.tpot_target_ms is None else state.tpot_target_ms / 1e3 * (n - 1)
            new = self._search(state.clocks, state.now_s, decode, target)
        else:
            return None
        return None if new == state.clocks else new


def best_fixed_clocks(board_factory: Any, settings: Sequence[Setting], requests: Sequence[TraceRequest]
                      ) -> tuple[Setting, list[Outcome]]:
    """Exhaustive search over settings: most requests meeting both targets, then least energy."""
    best = None
    for s in settings:
        outs = run_trace(board_factory(), StaticPolicy(*s), requests)
        sm = summarize("fixed", outs)
        key = (-sm.met_pct, sm.energy_J)
        if best is None or key < best[0]:
            best = (key, s, outs)
    assert best is not None
    return best[1], best[2]


def save_best_fixed(directory: str | os.PathLike, setting: Setting, trace: str) -> Path:
    body = {"gpu_MHz": setting[0], "emc_MHz": setting[1], "cpu_MHz": setting[2], "trace": trace}
    return write_text_atomic(Path(directory) / "best_fixed.json", json.dumps(body))


def load_best_fixed(directory: str | os.PathLike) -> StaticPolicy:
    path = Path(directory) / "best_fixed.json"
    try:
        d = json.loads(path.read_text())
        pol = StaticPolicy(float(d["gpu_MHz"]), float(d["emc_MHz"]), float(d["cpu_MHz"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CloneError(f"{path}: cannot read the best fixed clocks ({exc.__class__.__name__}; "
                         "run clone train-dvfs --out MODEL_DIR)") from None
    pol.name = "best-fixed"
    return pol
