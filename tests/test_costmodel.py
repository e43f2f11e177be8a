"""Roofline cost model: monotonic in clocks and shapes, decode memory-bound on Jetsons, energy from
the profile's power model, published-row validation within a stated error, accelerator hook."""

from __future__ import annotations

import pytest

from clone.costmodel import (CostShape, RooflineCostModel, Workload, cost_model_for, register_cost_model)
from clone.costmodel import base as cm_base
from clone.costmodel.roofline import Contention, load_calibrations
from clone.costmodel.validation import model_shape, validate
from clone.errors import CloneError
from clone.model.config import LayerShape
from clone.profiles import load_profile
from tests.conftest import tiny_config

NANO = "jetson-orin-nano-8gb"
BOARDS = ("jetson-orin-nano-8gb", "jetson-orin-nx-16gb", "jetson-agx-orin-64gb")


@pytest.fixture(scope="module")
def nano():
    return load_profile(NANO)


def gemma() -> CostShape:
    return CostShape(model_shape("gemma-2b"))


def clocks(gpu, emc, cpu=1344):
    return {"gpu_MHz": gpu, "emc_MHz": emc, "cpu_MHz": cpu}


def test_monotonic_in_clocks(nano):
    m = cost_model_for(nano)
    w = Workload(256, 16)
    gpus, emcs = nano.clock_choices("gpu"), nano.clock_choices("emc")
    ttft_by_gpu = [m.predict(gemma(), w, clocks(g, 3199)).ttft_s for g in gpus]
    tpot_by_emc = [m.predict(gemma(), w, clocks(918, e)).tpot_s for e in emcs]
    assert all(a >= b for a, b in zip(ttft_by_gpu, ttft_by_gpu[1:])) and ttft_by_gpu[0] > 1.5 * ttft_by_gpu[-1]
    assert all(a > b for a, b in zip(tpot_by_emc, tpot_by_emc[1:]))


def test_monotonic_in_shapes_and_pruned_costs_less(nano):
    m = cost_model_for(nano)
    w = Workload(128, 32)
    c = clocks(918, 3199)
    full = LayerShape(16, 4, 8192)
    kw = dict(dim=2048, head_dim=128, vocab_size=32000)
    dense = CostShape(tiny_config(layers=[full] * 4, **kw))
    pruned = CostShape(tiny_config(layers=[full, LayerShape(8, 2, 4096), LayerShape(12, 4, 6144), full], **kw))
    dropped = CostShape(tiny_config(layers=[full, LayerShape(0, 0, 8192), full, full], **kw))
    rd, rp, rx = (m.predict(s, w, c) for s in (dense, pruned, dropped))
    for r in (rp, rx):
        assert r.ttft_s < rd.ttft_s and r.tpot_s < rd.tpot_s and r.energy_J < rd.energy_J
    # longer prompts and outputs cost more; decode steps grow with the KV length
    big = gemma()
    assert m.predict(big, Workload(512, 8), c).ttft_s > m.predict(big, Workload(128, 8), c).ttft_s
    r = m.predict(big, Workload(128, 2048), c)
    assert r.tpot_last_s > r.tpot_first_s
    assert r.tpot_first_s <= r.tpot_s <= r.tpot_last_s


def test_quantized_weights_cost_less_and_group_overhead_counts(nano):
    m = cost_model_for(nano)
    w, c = Workload(64, 16), clocks(918, 3199)
    cfg = model_shape("llama-3.2-3b")
    t16, t8, t4 = (m.predict(CostShape(cfg, weight_bits=b), w, c).tpot_s for b in (16, 8, 4))
    assert t16 > t8 > t4
    g32 = m.forward_pass(CostShape(cfg, weight_bits=4, group_size=32), 1, 64, c).bytes
    g128 = m.forward_pass(CostShape(cfg, weight_bits=4, group_size=128), 1, 64, c).bytes
    assert g32 > g128
    with pytest.raises(CloneError, match="weight_bits 3"):
        CostShape(cfg, weight_bits=3)


@pytest.mark.parametrize("board", BOARDS)
def test_decode_memory_bound_prefill_compute_bound(board):
    p = load_profile(board)
    m = cost_model_for(p)
    top = p.max_clocks()
    s = gemma()
    step = m.step(s, 3, 1, 200, top)
    assert step.bound == "memory" and step.memory_s > 3 * step.compute_s
    assert m.step(s, 3, 512, 0, top).bound == "compute"
    # halving the GPU clock barely moves decode, but does move prefill
    low = dict(top, gpu_MHz=p.clocks.snap("gpu", top["gpu_MHz"] / 2))
    w = Workload(512, 64)
    hi_r, lo_r = m.predict(s, w, top), m.predict(s, w, low)
    assert lo_r.tpot_s / hi_r.tpot_s < 1.05
    assert lo_r.ttft_s / hi_r.ttft_s > 1.5
    assert lo_r.decode.energy_J < hi_r.decode.energy_J  # lower GPU clock saves decode energy


def test_energy_is_power_model_times_time(nano):
    m = cost_model_for(nano)
    c = clocks(918, 3199)
    step = m.step(gemma(), 0, 1, 100, c)
    want = nano.power_model.power_W(918, 3199, 1344, step.gpu_util, step.emc_util, step.cpu_util,
                                    cpu_online_cores=nano.mode().cpu_online_cores)
    assert step.energy_J == pytest.approx(want * step.time_s, rel=1e-9)
    assert nano.power_model.idle_W < step.power_W < nano.power_model.max_module_power_W
    # contention slows the step and adds power
    slow = m.step(gemma(), 0, 1, 100, c, Contention(1.3, 1.3, 1.3, 0.3, 0.2, 0.3))
    assert slow.time_s > step.time_s and slow.power_W > step.power_W


def test_validation_rows_within_stated_error():
    rows = validate()
    assert len(rows) == 4
    assert all(abs(v.error_pct) < 15 for v in rows)
    assert all(v.predicted_tps < v.bound_tps for v in rows)


def test_calibration_every_number_has_a_source(tmp_path):
    default, table = load_calibrations()
    assert default in table and "paper-eager" in table
    bad = tmp_path / "cal.yaml"
    bad.write_text("schema_version: 1\ndefault_runtime: x\nruntimes:\n  x: {description: d, compute_precision: fp16,"
                   " compute_precision_source: s, compute_efficiency: 0.5}\n")
    with pytest.raises(CloneError, match="compute_efficiency_source|missing"):
        load_calibrations(str(bad))


def test_accelerator_gets_the_simulator_or_a_registered_model(monkeypatch):
    accel = load_profile("clone-accel-28nm")
    from sim.costmodel import AcceleratorCostModel

    assert isinstance(cost_model_for(accel), AcceleratorCostModel)
    monkeypatch.setattr(cm_base, "_REGISTRY", {})
    monkeypatch.setattr(cm_base, "load_accelerator_model", lambda: None)  # as if sim/ were absent
    with pytest.raises(CloneError, match="register_cost_model"):
        cost_model_for(accel)
    sentinel = object()
    register_cost_model("accelerator", lambda p: sentinel)
    assert cost_model_for(accel) is sentinel


def test_bad_inputs(nano):
    m = RooflineCostModel(nano)
    with pytest.raises(CloneError, match="gpu_MHz"):
        m.predict(gemma(), Workload(8, 8), {"gpu_MHz": 918})
    with pytest.raises(CloneError, match="> 0"):
        m.predict(gemma(), Workload(8, 8), clocks(0, 3199))
    with pytest.raises(CloneError, match="prompt_tokens"):
        Workload(0, 8)
    with pytest.raises(CloneError, match="unknown runtime"):
        cost_model_for(nano, runtime="nope")


def test_removed_layer_costs_nothing(nano):
    from dataclasses import replace as dc_replace

    m = RooflineCostModel(nano)
    dense = gemma()
    layers = list(dense.config.layers)
    layers[1] = LayerShape(0, 0, 0)
    cut = CostShape(dc_replace(dense.config, layers=layers), weight_bits=dense.weight_bits)
    c = clocks(918, 3199)
    assert m.step(cut, 1, 1, 64, c).time_s == 0.0
    per_layer = m.step(dense, 1, 1, 64, c).time_s
    saved = m.predict(dense, Workload(64, 16), c).tpot_s - m.predict(cut, Workload(64, 16), c).tpot_s
    assert saved == pytest.approx(per_layer, rel=0.05)
