"""Simulated board: virtual time and energy equal the cost model's, clock switches cost their
latency, unlisted frequencies are refused, the co-runner is seeded and reproducible and slows work."""

from __future__ import annotations

import pytest

from clone.costmodel import CostShape
from clone.costmodel.validation import model_shape
from clone.errors import CloneError
from clone.runtime.device import Clocks, DeviceBackend
from clone.runtime.simboard import SWITCH_LATENCY_MS, Interference, SimulatedBoard, parse_device

NANO = "jetson-orin-nano-8gb"


def board(**kw) -> SimulatedBoard:
    b = SimulatedBoard(NANO, **kw)
    b.bind(CostShape(model_shape("gemma-2b")))
    return b


def test_is_a_device_backend_and_time_energy_match_cost_model():
    b = board()
    assert isinstance(b, DeviceBackend)
    clocks = b.get_clocks()
    rep = b.cost.predict(b.shape, __import__("clone.costmodel", fromlist=["Workload"]).Workload(64, 5), clocks)
    b.begin_phase("prefill")
    b.run_pass(64, 0)
    pre = b.end_phase()
    b.begin_phase("decode")
    for t in range(4):
        b.run_pass(1, 64 + t)
    dec = b.end_phase()
    assert pre.time_s == pytest.approx(rep.ttft_s, rel=1e-9)
    assert pre.energy_J == pytest.approx(rep.prefill.energy_J, rel=1e-9)
    assert dec.time_s == pytest.approx(rep.decode.time_s, rel=1e-6)
    assert dec.energy_J == pytest.approx(rep.decode.energy_J, rel=1e-6)
    assert b.now() == pytest.approx(pre.time_s + dec.time_s)


def test_clock_switch_latency_counted_and_unlisted_refused():
    b = board()
    with b:
        start = b.get_clocks()
        t0 = b.now()
        b.set_clocks(Clocks(306, 665.6, start.cpu_MHz))
        assert b.now() - t0 == pytest.approx((SWITCH_LATENCY_MS["gpu"] + SWITCH_LATENCY_MS["emc"]) * 1e-3)
        assert b.counters.switches == 2
        t1 = b.now()
        b.set_clocks(b.get_clocks())  # no change, no cost
        assert b.now() == t1
        with pytest.raises(CloneError, match=r"700 MHz is not a frequency .*allowed MHz: 306, 408"):
            b.set_clocks(Clocks(700, 665.6, start.cpu_MHz))
        with pytest.raises(CloneError, match="1020"):  # above the 25W mode cap of 918
            b.set_clocks(Clocks(1020, 665.6, start.cpu_MHz))
        slow = b.run_pass(1, 10)
    assert b.get_clocks() == start  # restored on exit
    assert slow > board().run_pass(1, 10)  # lower EMC clock: slower decode


def test_interference_seeded_reproducible_and_slows():
    a, b, c = Interference("websearch", 7), Interference("websearch", 7), Interference("websearch", 8)
    ts = [i * 0.37 for i in range(200)]
    la = [a.load_at(t) for t in ts]
    lb = [b.load_at(t) for t in reversed(ts)][::-1]  # order of queries does not matter
    assert la == lb
    assert la != [c.load_at(t) for t in ts]
    assert 0 < sum(x > 0 for x in la) < len(la)  # on and off periods both occur
    quiet = board(interference="none")
    busy = board(interference="constant:0.6")
    tq, tb = quiet.run_pass(1, 100), busy.run_pass(1, 100)
    assert tb / tq == pytest.approx(1 + 1.9 * 0.6, rel=0.05)
    assert busy.counters.energy_J / tb > quiet.counters.energy_J / tq  # co-runner adds power
    with pytest.raises(CloneError, match="interference"):
        Interference("mining")


def test_parse_device_errors_and_idle():
    assert parse_device("sim:jetson-orin-nx-16gb").name == "sim:jetson-orin-nx-16gb"
    assert isinstance(parse_device("auto"), SimulatedBoard)  # no Jetson here
    for bad, msg in (("gpu0", "unknown device"), ("sim:", "profile name"), ("jetson", "no Jetson")):
        with pytest.raises(CloneError, match=msg):
            parse_device(bad)
    b = board()
    b.begin_phase("idle")
    b.advance_to(2.0)
    acct = b.end_phase()
    assert acct.time_s == pytest.approx(2.0)
    assert acct.energy_J == pytest.approx(2.0 * b.cost.idle_power_W(b.get_clocks()))
    with pytest.raises(CloneError, match="no model bound"):
        SimulatedBoard(NANO).run_pass(1, 0)
