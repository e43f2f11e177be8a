"""The DVFS policies by name, for `clone deploy --policy ...` and the benchmark:
`clone` (the trained controller in MODEL_DIR/dvfs/), `clone-true-length` (the same fed the true
output lengths), `oracle`, `best-fixed` (the clocks train-dvfs found best for its trace); anything else
goes to clone.runtime.policies.make_policy (max, governor, static:...)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clone.errors import CloneError
from clone.runtime.policies import make_policy as make_runtime_policy

DVFS_POLICIES = ("clone", "clone-true-length", "oracle", "best-fixed")


class _LazyOracle:
    """OraclePolicy over the bound board's power-table grid (built at bind time)."""

    name = "oracle"
    events = ("request_start", "prefill_end")

    def bind(self, board: Any) -> None:
        from clone.dvfs.powertable import grid
        from clone.dvfs.reference import OraclePolicy

        self.inner = OraclePolicy(grid(board.profile, board.mode.name))
        self.inner.bind(board)

    def decide(self, state: Any) -> Any:
        return self.inner.decide(state)


def make_policy(spec: str, model_dir: str | Path | None = None) -> Any:
    text = (spec or "").strip()
    if text not in DVFS_POLICIES:
        try:
            return make_runtime_policy(text)
        except CloneError as exc:
            raise CloneError(f"{exc}; DVFS policies: {', '.join(DVFS_POLICIES)}") from None
    if text == "oracle":
        return _LazyOracle()
    if model_dir is None:
        raise CloneError(f"--policy {text}: needs the model directory holding dvfs/ (clone train-dvfs --out MODEL_DIR)")
    dvfs = Path(model_dir) / "dvfs"
    if text == "best-fixed":
        from clone.dvfs.reference import load_best_fixed

        return load_best_fixed(dvfs)
    from clone.dvfs.controller import ControllerPolicy, load_controller

    return ControllerPolicy(load_controller(dvfs), use_true_length=text == "clone-true-length")
