"""Edge profiles: every shipped profile loads, bad ones fail with a one-line error naming file and key,
and the power model behaves physically (monotonic in clock, plausible at the top)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clone.cli import main
from clone.errors import CloneError
from clone.profiles import (
    AcceleratorProfile,
    Profile,
    list_profiles,
    load_board,
    load_profile,
    profiles_dir,
)

BOARDS = ["jetson-orin-nano-8gb", "jetson-orin-nx-16gb", "jetson-agx-orin-64gb"]
NANO = "jetson-orin-nano-8gb"


def _write_variant(tmp_path: Path, edit, name: str = NANO) -> Path:
    """Copy a shipped profile into tmp_path after applying edit(data) to its parsed YAML."""
    data = yaml.safe_load((profiles_dir() / f"{name}.yaml").read_text())
    edit(data)
    out = tmp_path / f"{name}.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def _error(path: Path) -> str:
    with pytest.raises(CloneError) as info:
        load_profile(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: ") or msg.startswith(f"{path.name}: ") or str(path) in msg
    return msg


def test_all_shipped_profiles_load():
    names = list_profiles()
    assert set(BOARDS + ["clone-accel-28nm"]) <= set(names)
    for name in names:
        prof = load_profile(name)
        assert prof.name == name
    accel = load_profile("clone-accel-28nm")
    assert isinstance(accel, AcceleratorProfile) and accel.placeholder and accel.placeholder_note


def test_nano_has_15w_and_25w_super_modes_with_published_numbers():
    p = load_board(NANO)
    assert p.mode("15W").gpu_max_MHz == 625 and p.mode("25w").power_budget_W == 25
    assert p.mode("MAXN_SUPER").gpu_max_MHz == 1020
    # board-specs.csv: 68 GB/s at 15 W, 102 GB/s with the Super firmware.
    assert p.bandwidth_GBps("15W") == pytest.approx(68, abs=0.5)
    assert p.bandwidth_GBps("MAXN_SUPER") == pytest.approx(102)
    assert p.peak_TOPS("int8_sparse", "15W") == pytest.approx(40, rel=0.05)
    assert p.max_clocks("15W") == {"gpu_MHz": 625, "emc_MHz": 2133, "cpu_MHz": 1510.4}
    assert p.clock_choices("gpu", "15W")[-1] == 625


def test_every_mode_cap_is_a_listed_clock_and_every_section_has_a_source():
    for name in BOARDS:
        p = load_board(name)
        for m in p.modes:
            for d in ("gpu", "emc", "cpu"):
                assert m.max_MHz(d) in p.clocks.table(d)
        for section in ("memory", "compute", "clocks", "power_modes", "power_model",
                        "power_rails", "sysfs", "latency_budgets"):
            assert p.sources.get(section), (name, section)


def test_missing_key_names_file_and_key(tmp_path):
    path = _write_variant(tmp_path, lambda d: d["memory"].pop("dram_bandwidth_GBps"))
    msg = _error(path)
    assert "memory.dram_bandwidth_GBps: missing key" in msg and "allowed:" in msg


def test_wrong_unit_names_the_expected_key(tmp_path):
    def edit(d):
        d["memory"]["dram_bandwidth_GB"] = d["memory"].pop("dram_bandwidth_GBps")

    msg = _error(_write_variant(tmp_path, edit))
    assert "memory.dram_bandwidth_GB: wrong unit: expected 'dram_bandwidth_GBps'" in msg


def test_frequency_key_without_unit_is_rejected(tmp_path):
    def edit(d):
        d["clocks"]["gpu_freq"] = d["clocks"].pop("gpu_MHz")

    msg = _error(_write_variant(tmp_path, edit))
    assert "clocks.gpu_freq: numeric key without a unit suffix" in msg


def test_negative_frequency_is_rejected(tmp_path):
    def edit(d):
        d["clocks"]["gpu_MHz"][0] = -306

    msg = _error(_write_variant(tmp_path, edit))
    assert "clocks.gpu_MHz[0]: frequency -306 must be > 0" in msg


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda d: d["clocks"]["emc_MHz"].reverse(), "clocks.emc_MHz[1]"),
        (lambda d: d["clocks"]["gpu_MHz"].insert(1, 306), "duplicate frequency 306"),
        (lambda d: d["power_modes"]["modes"][0].update(gpu_max_MHz=700),
         "power_modes.modes[0].gpu_max_MHz: 700 is not in clocks.gpu_MHz (allowed: 306, 408"),
        (lambda d: d["memory"].update(memory_GB="8 GB"), "memory.memory_GB: expected a number > 0"),
        (lambda d: d["compute"]["peak_TOPS"].update(int7=1), "compute.peak_TOPS.int7: unknown key"),
        (lambda d: d.update(colour="green"), "colour: unknown key"),
        (lambda d: d["memory"].pop("source"), "memory.source: missing key"),
        (lambda d: d["power_model"]["domains"]["gpu"]["vf_V"].pop(), "vf_V: 2 voltages for 3"),
        (lambda d: d["latency_budgets"].update(default_class="gaming"),
         "latency_budgets.default_class: 'gaming' is not a class (allowed: chatbot"),
    ],
)
def test_other_schema_errors(tmp_path, edit, expected):
    assert expected in _error(_write_variant(tmp_path, edit))


def test_duplicate_yaml_key_is_an_error(tmp_path):
    path = tmp_path / f"{NANO}.yaml"
    text = (profiles_dir() / f"{NANO}.yaml").read_text()
    path.write_text(text.replace("  memory_GB: 8\n", "  memory_GB: 8\n  memory_GB: 16\n", 1))
    assert "duplicate key 'memory_GB'" in _error(path)


def test_unknown_profile_lists_the_available_ones():
    with pytest.raises(CloneError) as info:
        load_profile("jetson-orin-nano-4gb")
    msg = str(info.value)
    assert "unknown profile 'jetson-orin-nano-4gb'" in msg
    for name in BOARDS:
        assert name in msg


def test_profiles_dir_env_override(tmp_path, monkeypatch):
    _write_variant(tmp_path, lambda d: None)
    monkeypatch.setenv("CLONE_PROFILES_DIR", str(tmp_path))
    assert list_profiles() == [NANO]
    assert load_profile(NANO).path.parent == tmp_path


def test_power_model_is_monotonic_in_each_clock():
    for name in BOARDS:
        p = load_board(name)
        pm, top = p.power_model, p.max_clocks(p.modes[0].name)
        for d in ("gpu", "emc", "cpu"):
            powers = []
            for f in p.clocks.table(d):
                clocks = {**{k: p.clocks.max_MHz(k[:3]) for k in top}, f"{d}_MHz": f}
                powers.append(pm.power_W(**clocks))
            assert all(b > a for a, b in zip(powers, powers[1:])), (name, d, powers)
        # Utilisation raises power at a fixed clock; at minimum clocks and no load it is idle.
        assert pm.power_W(918 if "agx" not in name else 1020, 3199, 1344, gpu_util=0.2) < pm.power_W(
            918 if "agx" not in name else 1020, 3199, 1344, gpu_util=0.9)
        mins = {f"{d}_MHz": p.clocks.min_MHz(d) for d in ("gpu", "emc", "cpu")}
        assert pm.power_W(**mins, gpu_util=0, emc_util=0, cpu_util=0) == pytest.approx(pm.idle_W)


def test_power_model_voltage_scaling_is_superlinear_above_the_flat_region():
    gpu = load_board(NANO).power_model.gpu
    # Above 510 MHz V rises, so P/f must rise too (C*V^2*f), unlike a linear-in-f model.
    assert gpu.dynamic_W(1020) / 1020 > gpu.dynamic_W(612) / 612 * 1.2
    assert gpu.dynamic_W(408) / 408 == pytest.approx(gpu.dynamic_W(306) / 306)


def test_max_power_is_plausible_against_rating_and_mode_budgets():
    for name in BOARDS:
        p = load_board(name)
        rating = p.power_model.max_module_power_W
        top = max(p.max_power_W(m.name) for m in p.modes)
        assert 0.7 * rating <= top <= 1.05 * rating, (name, top, rating)
        for m in p.modes:
            assert p.max_power_W(m.name) <= 1.1 * m.power_budget_W, (name, m.name)
    # AGX GPU at MAXN against the published 40.4 W GPU-rail stress figure (jetson-clocks.md).
    agx = load_board("jetson-agx-orin-64gb")
    assert 25 <= agx.power_model.gpu.dynamic_W(1300.5) <= 45


def test_mode_budget_and_sysfs_helpers():
    p = load_board("jetson-orin-nx-16gb")
    assert p.mode().name == "MAXN"
    with pytest.raises(CloneError, match=r"unknown power mode 'turbo' \(allowed: MAXN, 15W, 25W\)"):
        p.mode("turbo")
    chat = p.budget()
    assert chat.app_class == "chatbot" and chat.e2e_ms(10) == chat.ttft_ms + 10 * chat.tpot_ms
    assert p.budget("code_completion").tpot_ms < p.budget("voice_assistant").tpot_ms
    with pytest.raises(CloneError, match="allowed: chatbot"):
        p.budget("gaming")
    assert p.sysfs_paths("6.1").gpu_devfreq_dir.endswith("17000000.gpu")
    assert p.sysfs_paths(5).gpu_load_file == "/sys/devices/gpu.0/load"
    assert p.sysfs_paths(6).cpufreq_dir(3) == "/sys/devices/system/cpu/cpu3/cpufreq"
    assert p.clocks.snap("gpu", 700) == 612 and p.clocks.snap("gpu", 100) == 306
    with pytest.raises(CloneError):
        load_board("clone-accel-28nm")


def test_cli_list_and_show(capsys):
    assert main(["profiles", "list"]) == 0
    out = capsys.readouterr().out
    for name in BOARDS + ["clone-accel-28nm"]:
        assert name in out
    assert "102 GB/s" in out and "15W, 25W, MAXN_SUPER" in out
    assert main(["profiles", "show", NANO]) == 0
    out = capsys.readouterr().out
    assert "68.0" in out and "TTFT" in out and "VDD_IN" in out and "sources:" in out
    assert main(["profiles", "show", "clone-accel-28nm"]) == 0
    assert "PLACEHOLDER" in capsys.readouterr().out


def test_cli_bad_profile_exits_2_with_one_line(tmp_path, capsys):
    path = _write_variant(tmp_path, lambda d: d["clocks"]["cpu_MHz"].__setitem__(0, 0))
    assert main(["profiles", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "clocks.cpu_MHz[0]" in err and path.name in err
    assert main(["profiles", "show", "no-such-board"]) == 2
    assert "allowed:" in capsys.readouterr().err
