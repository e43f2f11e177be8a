"""The RTL (Icarus, via tests/hw's runner helpers) and sim/ on the same seeded random command
streams, with the stream ports driven by the simulator's link model: equal cycle counts per
command, bit-identical outputs, equal final state (tests/sim_benches/bench_sim_agree.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "hw"))
sys.path.insert(0, str(HERE / "sim_benches"))

import rtl_harness as rtl  # noqa: E402

@pytest.fixture(scope="module")
def accel_icarus():
    from hw.params import AccelParams
    from hw.top import CloneAccel
    vfile = rtl.verilog_for("clone_accel", lambda: CloneAccel(AccelParams.small()))
    return rtl.build("icarus", vfile, "clone_accel")


@pytest.mark.slow
@pytest.mark.parametrize("seed,link", [(11, "1/1:0"), (12, "2/3:4"), (13, "1/3:9"), (14, "3/4:1")])
def test_rtl_and_sim_agree(seed, link, accel_icarus, tmp_path, monkeypatch):
    monkeypatch.setenv("CLONE_LINK", link)
    rtl.run_bench("icarus", accel_icarus, "clone_accel", "bench_sim_agree", tmp_path / "agree", seed=seed)
