"""Energy model and operating points: V^2 scaling of core energy, leakage linear in V and time,
alpha-power f_max monotonic, the point list equal to the RTL's SFU table, bad data rejected."""
from __future__ import annotations

import numpy as np
import pytest

from clone.errors import CloneError
from hw.params import AccelParams
from sim import actions as act
from sim.energy import EnergyModel, OperatingPoint, energy_table, point_table, rtl_points


def test_points_equal_rtl_vf_table_and_meet_fmax():
    table = point_table()
    assert [(p.name, p.voltage_V, p.freq_MHz) for p in table.points] == \
        [(p.name, p.voltage_V, p.freq_MHz) for p in rtl_points(AccelParams.asic28())]
    for p in table.points:
        assert p.freq_MHz <= table.law.fmax_MHz(p.voltage_V) + 1e-6


def test_alpha_power_fmax_monotonic_and_anchored():
    law = point_table().law
    vs = np.arange(0.40, 1.20, 0.01)
    f = [law.fmax_MHz(v) for v in vs]
    assert all(b > a for a, b in zip(f, f[1:]))
    assert law.fmax_MHz(law.anchor_voltage_V) == pytest.approx(law.anchor_freq_MHz)
    assert law.fmax_MHz(law.vth_V - 0.01) == 0.0


def test_dynamic_energy_scales_with_v_squared_offchip_does_not():
    em = EnergyModel(AccelParams.asic28())
    counts = act.vector(mac_int8=1000, wbuf_rd=10, envm_wr=3, link_in_B=4096, command=5, cycle=100)
    lo, hi = OperatingPoint("a", 0.6, 200), OperatingPoint("b", 0.9, 200)
    e_lo, e_hi = em.split_J(counts, 0.0, lo), em.split_J(counts, 0.0, hi)
    for c in ("compute", "sram", "envm", "control"):
        assert e_hi[c] == pytest.approx(e_lo[c] * (0.9 / 0.6) ** 2)
    assert e_hi["dram"] == e_lo["dram"] > 0 and e_hi["link"] == e_lo["link"] > 0
    t = energy_table()
    assert e_hi["compute"] == pytest.approx(1000 * t.int8_mac_pJ * 1e-12)       # 0.9 V = table voltage


def test_leakage_proportional_to_time_and_voltage():
    em = EnergyModel(AccelParams.asic28())
    z = act.zeros()
    p1, p2 = OperatingPoint("a", 0.6, 200), OperatingPoint("b", 0.9, 200)
    assert em.split_J(z, 2.0, p1)["leakage"] == pytest.approx(2 * em.split_J(z, 1.0, p1)["leakage"])
    assert em.split_J(z, 1.0, p2)["leakage"] == pytest.approx(1.5 * em.split_J(z, 1.0, p1)["leakage"])
    assert em.split_J(z, 1.0, p2)["leakage"] == pytest.approx(energy_table().leakage_mW * 1e-3)


def test_sram_energy_grows_with_size_and_matches_table_points():
    t = energy_table()
    assert t.sram_64b_pJ(8) == pytest.approx(5.1) and t.sram_64b_pJ(32) == pytest.approx(10.2)
    sizes = [0.5, 2, 8, 16, 32, 128, 1024, 4096]
    e = [t.sram_64b_pJ(s) for s in sizes]
    assert all(b > a for a, b in zip(e, e[1:]))
    em = EnergyModel(AccelParams.asic28())
    pj = em.per_action_pJ(OperatingPoint("r", 0.9, 500))
    assert pj["envm_wr"] > 10 * pj["envm_rd"]            # eNVM writes are the costly ones
    assert pj["mac_int4"] < pj["mac_int8"]


def test_points_parse_and_reject():
    table = point_table()
    assert table.get("l6").freq_MHz == 500
    assert table.get("0.76V@500MHz").name == "l6"
    assert table.get("0.80V@500MHz").name == "custom"
    for bad, word in (("l16", "unknown"), ("0.60V@700MHz", "f_max"), ("0.805V@500MHz", "voltage_V"),
                      ("0.80V@510MHz", "freq_MHz"), ("fast", "unknown")):
        with pytest.raises(CloneError, match=word):
            table.get(bad)


def test_bad_energy_file_names_the_key(tmp_path):
    import yaml
    from sim.energy import ENERGY_FILE
    data = yaml.safe_load(ENERGY_FILE.read_text())
    data["mac"]["int8_mac_pJ"] = -1
    f = tmp_path / "e.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(CloneError, match="mac.int8_mac_pJ"):
        energy_table(str(f))
