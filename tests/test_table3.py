"""experiments/table3.py (the paper's Table 3, our way) in its quick mode, plus the offloading and
accelerator-composition cost models it is built on (clone/costmodel/offload.py, coprocessor.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from clone.costmodel import CostShape, RooflineCostModel, Workload
from clone.costmodel.coprocessor import ExpertMixture, ExpertMixtureCostModel
from clone.costmodel.offload import OffloadCostModel, load_offload_data
from clone.errors import CloneError
from clone.profiles import load_board, load_profile

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "experiments" / "table3.py"
COLUMNS = {"profile", "mode", "workload", "method", "label", "main", "ppl", "removed_fraction", "weight_bits", "dvfs",
           "energy_J", "energy_Wh", "latency_s", "items", "tokens_processed", "mean_ttft_ms", "mean_tpot_ms",
           "targets_met_pct", "clock_switches", "J_per_token"}
METHODS = {"dense", "random", "uniform", "shortgpt", "flap", "flexgen", "clone", "clone-accel", "clone-fp16",
           "clone-int4", "clone-int4-dvfs", "clone-accel-array"}
PROFILES = {"jetson-orin-nx-16gb", "jetson-orin-nano-8gb"}


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=600,
                          check=False)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("table3")
    proc = run_script("--quick", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out, pd.read_csv(out / "table3.csv"), pd.read_csv(out / "table3_ratios.csv")


def cell(df: pd.DataFrame, profile: str, workload: str, method: str, col: str) -> float:
    g = df[(df.profile == profile) & (df.workload == workload) & (df.method == method)]
    assert len(g) == 1, (profile, workload, method)
    return float(g.iloc[0][col])


def test_quick_table_has_every_row_and_column(quick):
    out, df, _ = quick
    assert COLUMNS <= set(df.columns)
    assert set(df.profile) == PROFILES
    assert set(df.workload) == {"shakespeare", "shakespeare-prefill", "trace"}
    assert set(df.method) == METHODS
    assert len(df) == len(PROFILES) * 3 * len(METHODS)
    assert (df.energy_J > 0).all() and (df.latency_s > 0).all() and df.ppl.gt(1).all()
    for b in ("random", "uniform", "shortgpt", "flap", "clone"):
        frac = df[df.method == b].removed_fraction
        assert frac.between(0.17, 0.23).all(), (b, frac.tolist())
    text = (out / "table3.md").read_text()
    for heading in ("## Mixed request trace", "## Against the paper's claims", "## Where ours differ",
                    "## Paper-scale check", "## CLONE's search (per board)", "experiments/table3.py --quick"):
        assert heading in text


def test_quick_ratios_are_consistent(quick):
    _, df, ratios = quick
    for p in PROFILES:
        for w in ("shakespeare", "shakespeare-prefill", "trace"):
            dense = cell(df, p, w, "dense", "latency_s")
            # offloading is slower and costlier than the same model resident in memory
            assert cell(df, p, w, "flexgen", "latency_s") > dense
            assert cell(df, p, w, "flexgen", "energy_J") > cell(df, p, w, "dense", "energy_J")
            for b in ("random", "uniform", "shortgpt", "flap", "clone-fp16"):
                assert cell(df, p, w, b, "latency_s") < dense, (p, w, b)
            # every GEMM over the PCIe x1 link is far slower than the GPU
            assert cell(df, p, w, "clone-accel-array", "latency_s") > 5 * cell(df, p, w, "clone-accel", "latency_s")
        for w in ("shakespeare", "trace"):  # decode: INT4 and DVFS pay off
            assert cell(df, p, w, "clone-int4", "latency_s") < cell(df, p, w, "clone-fp16", "latency_s")
            assert cell(df, p, w, "clone-int4-dvfs", "energy_J") < cell(df, p, w, "clone-int4", "energy_J")
            assert cell(df, p, w, "clone", "energy_J") < cell(df, p, w, "uniform", "energy_J")
    # the Nano offloads to NVMe, the NX only copies inside DRAM
    def slowdown(p: str) -> float:
        return cell(df, p, "shakespeare", "flexgen", "latency_s") / cell(df, p, "shakespeare", "dense", "latency_s")

    assert slowdown("jetson-orin-nano-8gb") > 2 * slowdown("jetson-orin-nx-16gb")
    for _, row in ratios.iterrows():
        b = cell(df, row.profile, row.workload, row.baseline, "latency_s")
        c = cell(df, row.profile, row.workload, row.clone, "latency_s")
        assert row.latency_x == pytest.approx(b / c, rel=1e-9)
        e = cell(df, row.profile, row.workload, row.baseline, "energy_J") / cell(df, row.profile, row.workload, row.clone, "energy_J")
        assert row.energy_x == pytest.approx(e, rel=1e-9)


def test_unknown_profile_is_a_one_line_error():
    proc = run_script("--quick", "--profile", "jetson-orin-nx-17gb")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown profile 'jetson-orin-nx-17gb'" in lines[0], proc.stderr


def test_bad_config_value_names_file_and_key(tmp_path):
    text = (ROOT / "experiments" / "table3.yaml").read_text().replace("prefill_tokens: 64", "prefill_tokens: 999")
    cfg = tmp_path / "t3.yaml"
    cfg.write_text(text)
    proc = run_script("--quick", "--config", str(cfg), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "t3.yaml: shakespeare.prefill_tokens: 999" in proc.stderr


def test_bad_search_setting_is_rejected_before_any_model_work(tmp_path):
    """The search settings become a `clone optimize` recipe; its validation names the key."""
    text = (ROOT / "experiments" / "table3.yaml").read_text().replace("confirm_tokens: 4096", "confirm_tokens: 0")
    cfg = tmp_path / "t3.yaml"
    cfg.write_text(text)
    proc = run_script("--config", str(cfg), "--out", str(tmp_path / "out"), "--doc", str(tmp_path / "t3.md"))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "search" in proc.stderr and "confirm_tokens=0" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "t3.md").exists()


# ------------------------------------------------------------------------------------ cost models
@pytest.fixture(scope="module")
def smol_shape():
    from sim.workload import resolve_model

    return CostShape(resolve_model("smollm2-135m"))


def test_offload_placement_follows_memory_pressure(smol_shape):
    nano = OffloadCostModel(load_board("jetson-orin-nano-8gb")).placement(smol_shape)
    nx = OffloadCostModel(load_board("jetson-orin-nx-16gb")).placement(smol_shape)
    assert nx.disk == 0 and nx.cpu == pytest.approx(1.0)
    assert 0.4 < nano.disk < 0.6 and nano.gpu + nano.cpu + nano.disk == pytest.approx(1.0)


def test_offload_step_is_never_cheaper_than_resident(smol_shape):
    p = load_board("jetson-orin-nano-8gb")
    top = p.max_clocks()
    base, off = RooflineCostModel(p), OffloadCostModel(p)
    for layer, n in ((0, 1), (3, 64), (None, 1)):
        a, b = base.step(smol_shape, layer, n, 64, top), off.step(smol_shape, layer, n, 64, top)
        assert b.time_s > a.time_s and b.energy_J > a.energy_J and b.bytes > a.bytes
    # streamed bytes are the weights: an fp16 layer moves twice the bytes of the same layer at INT8
    w16 = off.weight_bytes(smol_shape, 0)
    w8 = off.weight_bytes(CostShape(smol_shape.config, weight_bits=8, group_size=0), 0)
    assert w16 / w8 == pytest.approx(2.0, rel=0.01)


def test_offload_data_errors_name_file_and_key(tmp_path):
    text = (Path(load_offload_data().path)).read_text()
    bad = tmp_path / "offload.yaml"
    bad.write_text(text.replace("    read_GBps: 3.5\n", "    read_GBps: -1\n", 1))
    with pytest.raises(CloneError, match=r"offload.yaml: storage.nvme-gen3x4.read_GBps: -1 out of range"):
        load_offload_data(str(bad))
    bad.write_text(text.replace("    active_power_W_source: >-\n", "    active_power_W_note: >-\n", 1))
    with pytest.raises(CloneError, match=r"storage.nvme-gen3x4: unknown key 'active_power_W_note'"):
        load_offload_data(str(bad))
    with pytest.raises(CloneError, match="unknown offload policy 'zero'"):
        OffloadCostModel(load_board("jetson-orin-nx-16gb"), policy="zero")


def test_expert_mixture_auto_takes_the_faster_device(smol_shape):
    p, acc = load_board("jetson-orin-nx-16gb"), load_profile("clone-accel-28nm")
    top, shape = p.max_clocks(), CostShape(smol_shape.config, weight_bits=4, group_size=64)
    models = {w: ExpertMixtureCostModel(p, ExpertMixture(), w, acc) for w in ("gpu", "lpu", "auto")}
    for n in (1, 64):  # decode prefers the LPU, a 64-token prefill the GPU
        t = {w: m.forward_pass(shape, n, 64, top).time_s for w, m in models.items()}
        assert t["auto"] <= min(t["gpu"], t["lpu"]) * (1 + 1e-9)
    base = RooflineCostModel(p).predict(shape, Workload(64, 16), top)
    assert models["gpu"].predict(shape, Workload(64, 16), top).e2e_s > base.e2e_s
    with pytest.raises(CloneError, match="exceeds the LPU's active slots"):
        ExpertMixtureCostModel(p, ExpertMixture(experts=3), "lpu", acc)
