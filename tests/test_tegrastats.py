"""tegrastats parsing and energy from recorded lines (tests/data/tegrastats_*.txt are synthetic)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from clone.errors import CloneError
from clone.runtime.jetson.telemetry import energy_from_tegrastats, parse_tegrastats

DATA = Path(__file__).resolve().parent / "data"


def lines(name: str) -> list[str]:
    return [x for x in (DATA / name).read_text().splitlines() if x.strip() and not x.startswith("#")]


def test_parse_orin_nano_jetpack6_line():
    s = parse_tegrastats(lines("tegrastats_orin_nano_jp6.txt")[2])
    assert s.timestamp == datetime(2026, 11, 28, 5, 0, 2)
    assert (s.ram_used_MB, s.ram_total_MB) == (3714, 7620)
    assert s.cpu_load_pct == [41, 9, 8, 10, 5, 4] and s.cpu_freq_MHz == [1344] * 6
    assert (s.gpu_load_pct, s.gpu_freq_MHz) == (95, 918)
    assert (s.emc_load_pct, s.emc_freq_MHz) == (64, 3199)
    assert s.rails_mW == {"VDD_IN": (13980, 7890), "VDD_CPU_GPU_CV": (6010, 2970),
                          "VDD_SOC": (3914, 2317)}
    assert s.module_W() == pytest.approx(13.98)
    assert s.temps_C["gpu"] == 48.3 and s.temps_C["tj"] == 48.3


def test_parse_agx_two_gpcs_and_rail_sum():
    s = parse_tegrastats(lines("tegrastats_agx_orin_jp6.txt")[1])
    assert (s.gpu_load_pct, s.gpu_freq_MHz) == (30, 1300)
    assert len(s.cpu_load_pct) == 12 and s.cpu_freq_MHz[0] == 2201
    assert "RAM" not in s.rails_mW and "SWAP" not in s.rails_mW
    assert s.module_W() == pytest.approx((9779 + 4346 + 6084 + 1521) / 1000)  # no VDD_IN on AGX
    assert s.module_W("VDD_GPU_SOC") == pytest.approx(9.779)
    with pytest.raises(CloneError, match="no rail VDD_IN.*allowed: VDD_GPU_SOC"):
        s.module_W("VDD_IN")


def test_parse_variants_off_cores_no_freq_old_rail_format():
    s = parse_tegrastats("RAM 1903/3956MB (lfb 4x4MB) CPU [12%@1479,off,5%@1479,off] EMC_FREQ 3% "
                         "GR3D_FREQ 0% POM_5V_IN 2416/2416 POM_5V_GPU 40/40 CPU@38.5C")
    assert s.cpu_load_pct == [12, None, 5, None] and s.cpu_load_mean_pct == pytest.approx(8.5)
    assert s.emc_freq_MHz is None and s.gpu_freq_MHz is None and s.gpu_load_pct == 0
    assert s.module_W() == pytest.approx(2.416)  # POM_5V_IN is the module input on older boards
    assert s.timestamp is None
    with pytest.raises(CloneError, match="not a tegrastats line"):
        parse_tegrastats("hello world")


def test_energy_from_recorded_lines_with_timestamps():
    e, t = energy_from_tegrastats(lines("tegrastats_orin_nano_jp6.txt"))
    p = [2.58, 7.11, 13.98, 7.11, 2.58]
    assert t == 4.0 and e == pytest.approx(sum((a + b) / 2 for a, b in zip(p, p[1:])))


def test_energy_from_recorded_lines_fixed_interval():
    e, t = energy_from_tegrastats(lines("tegrastats_orin_nx_jp5.txt"), interval_s=0.5)
    p = [4.07, 9.3, 16.2, 16.2]
    assert t == 1.5 and e == pytest.approx(0.5 * sum((a + b) / 2 for a, b in zip(p, p[1:])))
    e_agx, t_agx = energy_from_tegrastats(lines("tegrastats_agx_orin_jp6.txt"))
    assert t_agx == 2.0 and e_agx == pytest.approx((6.31 + 21.73) / 2 + (21.73 + 43.84) / 2)


def test_constant_power_lines_give_P_times_T():
    P_mW, n, dt = 5230, 31, 0.25
    ln = [f"RAM 2000/7620MB (lfb 100x4MB) CPU [5%@729] GR3D_FREQ 1%@[306] VDD_IN {P_mW}mW/{P_mW}mW"] * n
    e, t = energy_from_tegrastats(ln, interval_s=dt)
    assert t == pytest.approx((n - 1) * dt) and e == pytest.approx(P_mW / 1000 * t, rel=0.01)


def test_energy_needs_two_lines():
    with pytest.raises(CloneError, match="at least 2 lines"):
        energy_from_tegrastats(lines("tegrastats_orin_nx_jp5.txt")[:1])
