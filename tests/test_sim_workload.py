"""LLM workload mapping: the tiled command stream is valid and its explicit execution costs what
the per-class analytic count says; pruning and INT4 cost less; topology CSV; cost model plug-in;
CLI errors."""
from __future__ import annotations

import numpy as np
import pytest

from clone.costmodel.base import CostShape, Workload, cost_model_for
from clone.errors import CloneError
from clone.model.config import LayerShape, ModelConfig
from hw.params import AccelParams
from sim import actions as act
from sim.link import StreamLink
from sim.machine import Accelerator
from sim.workload import (Gemm, Mapper, accel_params, gemm_commands, model_gemms, plan, read_topology,
                          simulate, write_topology)


def tiny(layers=None, dim=64, vocab=96) -> ModelConfig:
    layers = layers or [LayerShape(4, 2, 96)] * 2
    return ModelConfig(arch="llama", vocab_size=vocab, dim=dim, head_dim=16, layers=layers, name="tiny")


@pytest.mark.parametrize("shape", [(1, 40, 24, 8), (7, 20, 36, 4), (20, 9, 200, 8), (300, 12, 8, 4)])
@pytest.mark.parametrize("small_wbuf", [False, True])
def test_explicit_stream_runs_and_matches_class_costing(shape, small_wbuf):
    m, n, k, bits = shape
    p = AccelParams.small().with_(wbuf_depth=3) if small_wbuf else AccelParams.small()
    link = StreamLink(__import__("fractions").Fraction(2, 3), 5)
    cmds = list(gemm_commands(p, m, n, k, bits))
    sim = Accelerator(p, link=link)
    explicit = [d for c in cmds for d in c.expand()]
    beats = {i: [0] * (d.d * p.beats(d.f)) for i, d in enumerate(explicit) if d.op == 1}
    recs = sim.run(explicit, beats)
    assert all(r.err == 0 for r in recs)
    cost = Mapper(p, link).run(cmds)
    assert cost.cycles == sim.now == sum(r.t + 1 for r in recs)
    assert np.array_equal(cost.actions, sim.totals)
    macs = sim.totals[act.INDEX["mac_int8"]] + sim.totals[act.INDEX["mac_int4"]]
    assert macs == m * (-(-n // p.n) * p.n) * (-(-k // p.n) * p.n)         # padded to N x N tiles
    tl = plan(p, m, n, k, bits)
    assert (len(tl.kc) > 1) == any(d.op == 3 and d.f & 2 for d in explicit)   # K split <=> ACC
    if small_wbuf and k > 3 * p.n * (2 if bits == 4 else 1):
        assert len(tl.kc) > 1


def test_pruned_shape_costs_less_and_int4_moves_half_the_weight_bytes():
    dense = tiny()
    pruned = tiny([LayerShape(2, 1, 64), LayerShape(0, 0, 96)])       # one attention block dropped
    rd = simulate(dense, 16, 4, params=AccelParams.small(), point="l8")
    rp = simulate(pruned, 16, 4, params=AccelParams.small(), point="l8")
    for ph in ("prefill", "decode"):
        a, b = getattr(rd, ph), getattr(rp, ph)
        assert b.cycles < a.cycles and b.total_J < a.total_J and b.macs < a.macs
    p = AccelParams.asic28()
    mp = Mapper(p, StreamLink.ideal())
    w8 = mp.gemm(Gemm("g", 1, 1536, 576, 8)).actions[act.INDEX["link_in_B"]]
    w4 = mp.gemm(Gemm("g", 1, 1536, 576, 4)).actions[act.INDEX["link_in_B"]]
    x_bytes = 576                                               # the activation vector
    assert w8 - x_bytes == 1536 * 576 and w4 - x_bytes == 1536 * 576 // 2


def test_decode_cost_grows_with_context():
    r = simulate(tiny(), 8, 40, params=AccelParams.small(), point="l8")
    assert r.decode_last_s > r.decode_first_s
    assert len(r.prefill.layers) == 3 and r.prefill.layers[-1]["layer"] == "lm_head"


def test_energy_split_and_point_scaling():
    cfg = tiny()
    lo = simulate(cfg, 8, 4, params=AccelParams.small(), point="l0")
    hi = simulate(cfg, 8, 4, params=AccelParams.small(), point="l15")
    assert hi.decode.time_s < lo.decode.time_s
    assert hi.decode.energy_J["compute"] > lo.decode.energy_J["compute"]          # V^2
    assert hi.decode.energy_J["dram"] == pytest.approx(lo.decode.energy_J["dram"])
    # l0 is the reset level: only the (always run) settle and relock, no LDO steps
    assert hi.prefill.energy_J["dvfs"] > lo.prefill.energy_J["dvfs"] > 0


def test_lora_path_uses_adapter_store():
    p = AccelParams.small()
    cfg = tiny([LayerShape(2, 1, 16)] * 2, dim=p.nt * p.n)
    cfg.head_dim = p.kt * p.n // 2
    r0 = simulate(cfg, 4, 3, params=p, point="l8")
    r2 = simulate(cfg, 4, 3, params=p, point="l8", lora_slots=2)
    assert r0.decode.energy_J["envm"] == 0 < r2.decode.energy_J["envm"]
    with pytest.raises(CloneError, match="dim"):
        simulate(tiny(dim=48), 4, 3, params=p, lora_slots=1)


def test_topology_csv_round_trip(tmp_path):
    gemms = model_gemms(tiny(), 16, 16, 8)
    f = tmp_path / "topo.csv"
    text = write_topology(gemms, f)
    assert text.splitlines()[0] == "Layer,M,N,K"
    back = read_topology(f)
    assert sum(g.count for g in gemms) == len(back)
    assert back[0].m == 16 and back[0].k == 64
    f.write_text("Layer, M, N, K,\nconv1, 4, 8, 16,\n")
    assert read_topology(f)[0] == Gemm("conv1", 4, 8, 16)
    f.write_text("Layer,M,N,K\nx,4,y,16\n")
    with pytest.raises(CloneError, match="line 2"):
        read_topology(f)


def test_accel_params_validation():
    assert accel_params("16x16") == AccelParams.asic28()
    p32 = accel_params("32x32")
    assert p32.n == 32 and p32.wbuf_depth * 32 * 32 == 128 * 1024 and p32.kt * 32 == 576
    for arr, buf, word in (("16x8", None, "--array"), ("5x5", None, "--array"), ("4x4", None, "wbuf"),
                           ("16x16", {"abuf": 100}, "abuf"), ("16x16", {"sram": 1}, "unknown")):
        with pytest.raises(CloneError, match=word):
            accel_params(arr, buf)


def test_cost_model_plugin_matches_report_fields():
    import sim.costmodel  # noqa: F401  registers itself
    from clone.profiles import load_profile
    cm = cost_model_for(load_profile("clone-accel-28nm"))
    assert type(cm).__name__ == "AcceleratorCostModel" and cm.params == AccelParams.asic28()
    cfg = tiny(dim=64)
    r8 = cm.predict(CostShape(cfg, weight_bits=8), Workload(16, 8), {"point": "l6"})
    r4 = cm.predict(CostShape(cfg, weight_bits=4), Workload(16, 8), "0.76V@500MHz")
    r16 = cm.predict(CostShape(cfg), Workload(16, 8), {"voltage_V": 0.76, "freq_MHz": 500})
    assert r8.clocks == {"freq_MHz": 500.0, "voltage_V": 0.76}
    assert r16.e2e_s == pytest.approx(r8.e2e_s)                      # 16-bit weights run as INT8
    assert r4.decode.bytes < r8.decode.bytes and r4.energy_J < r8.energy_J
    assert len(r8.prefill.layers) == cfg.n_layers and r8.tpot_s > 0
    d = r8.as_dict()
    assert d["ttft_ms"] > 0 and d["energy_J"] == pytest.approx(r8.prefill.energy_J + r8.decode.energy_J)
    assert cm.point({"freq_MHz": 700}).voltage_V <= 0.86
    # simulated-board interface: the steps of a pass add up to the report's prefill
    sh = CostShape(cfg, weight_bits=8)
    steps = [cm.step(sh, i, 16, 0, {"point": "l6"}) for i in range(cfg.n_layers)] + [cm.step(sh, None, 16, 0, "l6")]
    assert sum(s.time_s for s in steps) < r8.prefill.time_s            # + the request's DVFS switch
    assert sum(s.flops for s in steps) == pytest.approx(r8.prefill.flops)
    assert cm.step(sh, 0, 1, 64, "l6").time_s > cm.step(sh, 0, 1, 8, "l6").time_s
    assert 0 < cm.idle_power_W("l0") < cm.idle_power_W("l15")
    with pytest.raises(CloneError, match="operating point"):
        cm.predict(CostShape(cfg), Workload(4, 2), {"point": "turbo"})


def test_cli_sim_and_sweep(tmp_path, capsys):
    from clone.cli import main
    topo = tmp_path / "t.csv"
    topo.write_text("Layer,M,N,K\na,1,64,64\nb,8,32,128\n")
    assert main(["hw", "sim", "--topology", str(topo), "--vf", "l3"]) == 0
    assert "total:" in capsys.readouterr().out
    assert main(["hw", "sim", "--topology", str(topo), "--array", "16x12"]) == 2
    assert "--array" in capsys.readouterr().err
    assert main(["hw", "sim", "--topology", str(topo), "--vf", "0.6V@900MHz"]) == 2
    assert "f_max" in capsys.readouterr().err
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    import json
    (model_dir / "config.json").write_text(json.dumps({"clone_format": 1, "model": tiny().to_dict()}))
    out = tmp_path / "sweep.csv"
    assert main(["hw", "sweep", "--model", str(model_dir), "--prompt-len", "8", "--gen-len", "3",
                 "--points", "l0,l15", "--arrays", "8x8,16x16", "--bits", "8,4", "--out", str(out)]) == 0
    import pandas as pd
    df = pd.read_csv(out)
    assert len(df) == 8 and set(df.point) == {"l0", "l15"}
