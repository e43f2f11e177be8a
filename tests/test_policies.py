"""Clock policies: max, static (listed values only), governor stepping on measured load."""

from __future__ import annotations

import pytest

from clone.costmodel import CostShape
from clone.costmodel.validation import model_shape
from clone.errors import CloneError
from clone.runtime.device import Clocks
from clone.runtime.policies import GovernorPolicy, MaxPolicy, Policy, PolicyState, StaticPolicy, make_policy
from clone.runtime.simboard import SimulatedBoard


def sim(mode=None):
    b = SimulatedBoard("jetson-orin-nano-8gb", mode=mode)
    b.bind(CostShape(model_shape("gemma-2b")))
    return b


def state(b, **kw):
    c = b.counters
    return PolicyState(event="layer", now_s=b.now(), clocks=b.get_clocks(), phase="decode", prompt_tokens=8,
                       max_new_tokens=8, counters=(c.time_s, c.gpu_busy_s, c.dram_bytes),
                       bandwidth_Bps=b.cost.bandwidth_Bps(b.get_clocks().emc_MHz), **kw)


def test_parse_and_protocol():
    for spec, cls in (("max", MaxPolicy), ("governor", GovernorPolicy), ("static:gpu=306,emc=2133", StaticPolicy)):
        p = make_policy(spec)
        assert isinstance(p, cls) and isinstance(p, Policy)
    for bad, msg in (("fastest", "unknown policy"), ("static:", "at least one"), ("static:gpu=fast", "not a frequency"),
                     ("static:npu=3", "unknown clock")):
        with pytest.raises(CloneError, match=msg):
            make_policy(bad)


def test_max_and_static():
    b = sim()
    b.set_clocks(Clocks(306, 204, 115.2))
    p = make_policy("max")
    p.bind(b)
    assert p.decide(state(b)) == Clocks(918, 3199, 1344)
    s = make_policy("static:gpu=510,emc=2133")
    s.bind(b)
    assert s.decide(state(b)) == Clocks(510, 2133, 1344)
    with pytest.raises(CloneError, match=r"gpu=700 MHz is not a frequency .*allowed gpu MHz: 306"):
        make_policy("static:gpu=700").bind(b)
    with pytest.raises(CloneError, match="1020"):
        make_policy("static:gpu=1020").bind(b)  # listed by the board, but above the 25W cap


def test_governor_lowers_gpu_when_idle_and_raises_when_busy():
    b = sim()
    g = GovernorPolicy(period_s=0.01)
    g.bind(b)
    assert g.decide(state(b)) is None  # first call only starts the sampling window
    b.idle(0.05)  # no work: load 0
    new = g.decide(state(b))
    assert new is not None and new.gpu_MHz == 306 and new.emc_MHz == 204
    b.set_clocks(new)
    g.decide(state(b))
    for _ in range(4):  # compute-bound prefill work: load ~1 -> jump to max
        b.run_pass(256, 0)
    busy = g.decide(state(b))
    assert busy is not None and busy.gpu_MHz == 918
    # decode of a memory-bound model drives the EMC up to the bandwidth it needs
    b.set_clocks(Clocks(918, 665.6, 1344))
    for k in range(6):
        for t in range(3):
            b.run_pass(1, 100 + 3 * k + t)
        new = g.decide(state(b))
        if new is not None:
            b.set_clocks(new)
    assert b.get_clocks().emc_MHz == 3199
