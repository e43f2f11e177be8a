"""Jetson backend on fake board trees (Orin Nano, Orin NX, AGX Orin; JetPack 5 and 6).

The trees come from clone.runtime.jetson.faketree; their FakeKernel hook refuses what the kernel
refuses (min above max, unlisted rates), so a write in the wrong order fails here as it would on a
board. Tests assert the recorded write sequence and that the original state comes back.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clone.errors import CloneError
from clone.profiles import load_board
from clone.runtime.device import Clocks, DeviceBackend
from clone.runtime.jetson import backend as backend_mod
from clone.runtime.jetson.backend import JetsonBackend, auto_backend
from clone.runtime.jetson.discovery import detect, parse_nvpmodel_conf
from clone.runtime.jetson.faketree import BOARDS, JETPACKS, build_fake_board, parse_fake_spec
from clone.runtime.jetson.sysfs import ENV_ROOT, SysfsRoot
from clone.runtime.jetson.telemetry import EnergyIntegrator, PowerSampler, integrate

REPO = Path(__file__).resolve().parent.parent
ALL = [(b, jp) for b in BOARDS for jp in JETPACKS]


@pytest.fixture(params=ALL, ids=[f"{b}-jp{jp}" for b, jp in ALL])
def fake(request, tmp_path):
    board, jp = request.param
    return build_fake_board(board, jp, tmp_path / "root")


def _low_high(b: JetsonBackend) -> tuple[Clocks, Clocks]:
    a = {d: b.available_MHz(d) for d in ("gpu", "emc", "cpu")}
    return (Clocks(a["gpu"][0], a["emc"][0], a["cpu"][0]),
            Clocks(a["gpu"][-1], a["emc"][-1], a["cpu"][-1]))


def _hz(MHz: float) -> str:
    return str(int(round(MHz * 1e6)))


def _khz(MHz: float) -> str:
    return str(int(round(MHz * 1e3)))


# --------------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------------


def test_discovery_finds_every_piece(fake):
    d = detect(fake.sysfs())
    assert d is not None and d.problems == []
    assert d.profile.name == fake.profile.name
    assert d.jetpack == fake.jetpack and "nv_tegra_release" in d.jetpack_from
    assert d.gpu.devfreq_dir == fake.paths.gpu_devfreq_dir
    expected_node = "17000000.ga10b" if fake.jetpack == 5 else "17000000.gpu"
    assert d.gpu.devfreq_dir.endswith(expected_node)
    assert d.gpu.load_file == fake.paths.gpu_load_file
    cores = fake.profile.compute.cpu_cores
    assert len(d.cpu) == math.ceil(cores / 4)
    assert sorted(c for p in d.cpu for c in p.cpus) == list(range(cores))
    assert d.emc.rate == fake.paths.emc_rate_file
    assert d.nvpmodel.current.name == fake.mode_name
    assert set(d.rails) == set(fake.profile.power_rails.rails)


def test_gpu_found_by_devfreq_scan_when_not_at_profile_path(tmp_path):
    # JetPack 6 images may put the GPU under bus@0; the of_node scan must still find it (and skip
    # the decoy vic devfreq device).
    moved = "/sys/devices/platform/bus@0/17000000.gpu/devfreq/17000000.gpu"
    fb = build_fake_board("jetson-orin-nx-16gb", 6, tmp_path / "r", gpu_dir=moved)
    d = detect(fb.sysfs())
    assert d.gpu.devfreq_dir == moved and "scan" in d.gpu.found_by
    b = JetsonBackend(None, fb.root)
    assert b.available_MHz("gpu") == fb.profile.clocks.up_to("gpu", 918)
    assert b.gpu_load() == pytest.approx(0.12)


@pytest.mark.parametrize("jp", JETPACKS)
def test_jetpack_from_layout_without_release_file(tmp_path, jp):
    fb = build_fake_board("jetson-agx-orin-64gb", jp, tmp_path / "r", with_release_file=False)
    d = detect(fb.sysfs())
    assert d.jetpack == jp and "layout probe" in d.jetpack_from


def test_auto_detection_is_none_without_jetson_files(tmp_path):
    assert auto_backend(tmp_path) is None
    (tmp_path / "sys/class/devfreq/ff000000.other").mkdir(parents=True)
    (tmp_path / "proc").mkdir()
    assert detect(SysfsRoot(tmp_path)) is None


def test_auto_detection_ignores_other_arm_gpus(tmp_path):
    # An ARM board whose Mali GPU node is also called "gpu" is not a Jetson.
    dev = tmp_path / "sys/devices/platform/fb000000.gpu"
    node = tmp_path / "sys/firmware/devicetree/base/gpu@fb000000"
    node.mkdir(parents=True)
    (node / "name").write_text("gpu")
    (node / "compatible").write_text("rockchip,rk3588-mali\x00arm,mali-bifrost\x00")
    (dev / "devfreq/fb000000.gpu").mkdir(parents=True)
    (dev / "of_node").symlink_to("../../../firmware/devicetree/base/gpu@fb000000")
    (dev / "devfreq/fb000000.gpu/device").symlink_to("../..")
    (tmp_path / "sys/class/devfreq").mkdir(parents=True)
    (tmp_path / "sys/class/devfreq/fb000000.gpu").symlink_to(
        "../../devices/platform/fb000000.gpu/devfreq/fb000000.gpu")
    assert SysfsRoot(tmp_path).read("/sys/class/devfreq/fb000000.gpu/device/of_node/name") == "gpu"
    assert auto_backend(tmp_path) is None


def test_detects_jetson_from_gpu_node_without_device_tree_model(tmp_path):
    fb = build_fake_board("jetson-orin-nx-16gb", 6, tmp_path / "r")
    (fb.root / "sys/firmware/devicetree/base/model").unlink()
    (fb.root / "sys/firmware/devicetree/base/compatible").unlink()
    d = detect(fb.sysfs())
    assert d is not None and d.gpu is not None and d.profile is None
    with pytest.raises(CloneError, match="found a Jetson but no profile"):
        auto_backend(fb.root)
    b = JetsonBackend("jetson-orin-nx-16gb", fb.root)  # an explicit profile makes it usable
    assert b.available_MHz("gpu")[-1] == 918


def test_profile_that_does_not_match_the_board_is_reported(tmp_path):
    fb = build_fake_board("jetson-orin-nx-16gb", 6, tmp_path / "r")
    b = JetsonBackend("jetson-orin-nano-8gb", fb.root)
    assert any("looks like jetson-orin-nx-16gb" in p for p in b.discovery.problems)


def test_auto_detection_uses_env_root(tmp_path, monkeypatch):
    fb = build_fake_board("jetson-orin-nano-8gb", 5, tmp_path / "r")
    monkeypatch.setenv(ENV_ROOT, str(fb.root))
    b = auto_backend()
    assert isinstance(b, JetsonBackend) and isinstance(b, DeviceBackend)
    assert b.profile.name == "jetson-orin-nano-8gb" and b.jetpack == 5
    assert b.nvpmodel_mode == "15W"  # JetPack 5 has no Super modes


def test_missing_pieces_give_clear_messages(tmp_path):
    fb = build_fake_board("jetson-orin-nx-16gb", 5, tmp_path / "r", with_emc=False, with_rails=False)
    b = JetsonBackend(None, fb.root)
    assert any("EMC" in p and "debugfs" in p for p in b.discovery.problems)
    assert any("INA3221" in p for p in b.discovery.problems)
    assert math.isnan(b.get_clocks().emc_MHz) and b.power_W() is None
    with pytest.raises(CloneError, match="emc clock: not available.*debugfs"):
        b.set_clocks(Clocks(306, 204, 115.2))
    assert b.sysfs.written() == []
    # Without a GPU devfreq node the backend cannot work at all.
    import shutil
    shutil.rmtree(fb.root / "sys/class/devfreq")
    shutil.rmtree(fb.root / fb.paths.gpu_devfreq_dir.lstrip("/"))
    with pytest.raises(CloneError, match="missing gpu.*GPU devfreq node not found"):
        JetsonBackend("jetson-orin-nx-16gb", fb.root)


def test_nvpmodel_conf_parser():
    text = """< SOC_FAMILY NAME=tegra234 >
< POWER_MODEL ID=0 NAME=MAXN >
CPU_A78_0 MAX_FREQ -1
GPU MAX_FREQ -1
EMC MAX_FREQ 0
< POWER_MODEL ID=1 NAME=15W >
CPU_A78_0 MAX_FREQ 1113600
GPU MAX_FREQ 510000000
EMC MAX_FREQ 2133000000
< PM_CONFIG DEFAULT=1 >"""
    modes, default = parse_nvpmodel_conf(text)
    assert default == 1 and modes[0].name == "MAXN" and modes[0].gpu_max_Hz is None
    m = modes[1]
    assert (m.gpu_max_Hz, m.emc_max_Hz, m.cpu_max_kHz) == (510000000, 2133000000, 1113600)


def test_fake_spec_parsing():
    assert parse_fake_spec("jetson-agx-orin-64gb") == ("jetson-agx-orin-64gb", 6)
    assert parse_fake_spec("jetson-orin-nano-8gb:5") == ("jetson-orin-nano-8gb", 5)
    with pytest.raises(CloneError, match="allowed: 5, 6"):
        parse_fake_spec("jetson-orin-nano-8gb:4")


# --------------------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------------------


def test_reads_match_profile_and_files(fake):
    b = JetsonBackend(None, fake.root)
    mode = fake.profile.mode(fake.mode_name)
    for d in ("gpu", "emc", "cpu"):
        assert b.available_MHz(d) == fake.profile.clocks.up_to(d, mode.max_MHz(d))
        assert b.listed_MHz(d) == fake.tables_MHz[d]
    c = b.get_clocks()
    assert c.gpu_MHz == int(fake.read(f"{fake.gpu_dir}/cur_freq")) / 1e6
    assert c.emc_MHz == int(fake.read(fake.paths.emc_rate_file)) / 1e6
    assert c.cpu_MHz == int(fake.read(f"{fake.paths.cpufreq_dir(0)}/scaling_cur_freq")) / 1e3
    assert not b.read_only and b.sysfs.writes == []


def test_module_power_from_rails(fake):
    fake.set_power(9.0)
    b = JetsonBackend(None, fake.root)
    rails = fake.profile.power_rails
    expected_rails = ["VDD_IN"] if rails.module_rail else list(rails.rails)
    assert b.power_rails == expected_rails
    assert b.power_W() == pytest.approx(9.0, rel=2e-3)


# --------------------------------------------------------------------------------------------------
# Writes: order, refusal, kernel emulation
# --------------------------------------------------------------------------------------------------


def _expected_pin(fake, b: JetsonBackend, c: Clocks, raising: bool) -> list[tuple[str, str]]:
    g, e = fake.gpu_dir, fake.paths
    gpu = [(f"{g}/max_freq", _hz(c.gpu_MHz)), (f"{g}/min_freq", _hz(c.gpu_MHz))]
    emc = [(e.emc_rate_locked_file, "1"), (e.emc_rate_file, _hz(c.emc_MHz))]
    cpu = []
    for p in b.discovery.cpu:
        pair = [(f"{p.dir}/scaling_max_freq", _khz(c.cpu_MHz)),
                (f"{p.dir}/scaling_min_freq", _khz(c.cpu_MHz))]
        cpu += pair if raising else pair[::-1]
    return (gpu if raising else gpu[::-1]) + emc + cpu


def test_write_order_raising_and_lowering(fake):
    b = JetsonBackend(None, fake.root)
    low, high = _low_high(b)
    with b:
        b.set_clocks(low)
        assert b.sysfs.written() == _expected_pin(fake, b, low, raising=False)
        assert b.get_clocks() == low
        b.sysfs.clear_writes()
        b.set_clocks(high)  # every domain goes above its current max: max before min
        assert b.sysfs.written() == _expected_pin(fake, b, high, raising=True)
        assert b.get_clocks() == high
        b.sysfs.clear_writes()
        b.set_clocks(low)  # below the current min: min before max
        assert b.sysfs.written() == _expected_pin(fake, b, low, raising=False)
        b.sysfs.clear_writes()
        b.set_clocks(low)  # unchanged: nothing to write
        assert b.sysfs.written() == []
        assert all(w.ok for w in b.sysfs.writes)


def test_fake_kernel_refuses_wrong_order_and_unlisted_values(tmp_path):
    fb = build_fake_board("jetson-orin-nano-8gb", 6, tmp_path / "r")
    s = fb.sysfs()
    g = fb.gpu_dir
    s.write(f"{g}/min_freq", 306000000)
    s.write(f"{g}/max_freq", 306000000)
    with pytest.raises(OSError) as e:  # raising min past max first: what the write order avoids
        s.write(f"{g}/min_freq", 918000000)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError):
        s.write(f"{g}/max_freq", 700000000)  # not in available_frequencies
    with pytest.raises(OSError):
        s.write(fb.paths.emc_rate_file, 1000000000)  # not in possible_rates
    with pytest.raises(PermissionError):
        s.write(f"{g}/cur_freq", 306000000)
    assert [w.ok for w in s.writes] == [True, True, False, False, False, False]
    assert fb.read(f"{g}/min_freq") == "306000000"


@pytest.mark.parametrize("board", BOARDS)
def test_unlisted_frequency_refused_without_writes(tmp_path, board):
    fb = build_fake_board(board, 6, tmp_path / "r")
    before = fb.state()
    b = JetsonBackend(None, fb.root)
    low, _ = _low_high(b)
    with b:
        for bad, field in ((Clocks(700, low.emc_MHz, low.cpu_MHz), "gpu"),
                           (Clocks(low.gpu_MHz, 1000, low.cpu_MHz), "emc"),
                           (Clocks(low.gpu_MHz, low.emc_MHz, 1000), "cpu")):
            with pytest.raises(CloneError) as e:
                b.set_clocks(bad)
            msg = str(e.value)
            assert msg.startswith(f"{field} clock: {bad.get(field):g} MHz is not a frequency")
            assert fmt_list(b.available_MHz(field)) in msg
        with pytest.raises(CloneError, match="is not a frequency"):
            b.set_clocks(Clocks(float("nan"), low.emc_MHz, low.cpu_MHz))
        assert b.sysfs.writes == []
    assert fb.state() == before


def fmt_list(xs) -> str:
    return ", ".join(f"{x:g}" for x in xs)


def test_listed_value_above_power_mode_cap_refused(tmp_path):
    fb = build_fake_board("jetson-orin-nano-8gb", 6, tmp_path / "r")  # 25W: GPU cap 918 MHz
    b = JetsonBackend(None, fb.root)
    assert 1020 in b.listed_MHz("gpu") and 1020 not in b.available_MHz("gpu")
    with pytest.raises(CloneError, match=r"gpu clock: 1020 MHz is above the 918 MHz cap of "
                                         r"nvpmodel mode 25W"):
        b.set_clocks(Clocks(1020, 204, 115.2))
    assert b.sysfs.writes == []


def test_profile_rounding_matches_listed_step(tmp_path):
    # A board lists 624.75 MHz where the profile says 625: a request within 0.5 MHz maps to it.
    fb = build_fake_board("jetson-orin-nano-8gb", 5, tmp_path / "r")
    avail = fb.real(f"{fb.gpu_dir}/available_frequencies")
    avail.write_text(avail.read_text().replace("625000000", "624750000"))
    fb.write_raw(f"{fb.gpu_dir}/max_freq", 624750000)
    b = JetsonBackend(None, fb.root)
    with b:
        b.set_clock("gpu", 625)
        assert fb.read(f"{fb.gpu_dir}/min_freq") == "624750000"


def test_cpu_steps_from_profile_when_driver_lists_none(tmp_path):
    fb = build_fake_board("jetson-agx-orin-64gb", 6, tmp_path / "r")
    for pol in ("policy0", "policy4", "policy8"):
        (fb.root / f"sys/devices/system/cpu/cpufreq/{pol}/scaling_available_frequencies").unlink()
    fb.write_raw("/sys/devices/system/cpu/cpufreq/policy0/cpuinfo_max_freq", 1728000)
    b = JetsonBackend(None, fb.root)
    assert b.listed_MHz("cpu") == fb.profile.clocks.up_to("cpu", 1728)


# --------------------------------------------------------------------------------------------------
# Restore
# --------------------------------------------------------------------------------------------------


def test_restore_on_normal_exit(fake):
    before = fake.state()
    b = JetsonBackend(None, fake.root)
    low, high = _low_high(b)
    with b:
        b.set_clocks(high)
        b.set_clocks(low)
        assert fake.state() != before
        b.sysfs.clear_writes()
    assert fake.state() == before
    # Restore raises the pinned-low ranges back: min before max, then EMC rate before the lock flag.
    written = b.sysfs.written()
    assert written[0] == (f"{fake.gpu_dir}/min_freq", fake.read(f"{fake.gpu_dir}/min_freq"))
    assert written[1][0] == f"{fake.gpu_dir}/max_freq"
    assert written[-2:] == [(fake.paths.emc_rate_file, fake.read(fake.paths.emc_rate_file)),
                            (fake.paths.emc_rate_locked_file, "0")]
    assert b.restore_problems == []


def test_restore_on_exception_and_governor_change(fake):
    before = fake.state()
    b = JetsonBackend(None, fake.root)
    low, _ = _low_high(b)
    with pytest.raises(RuntimeError, match="boom"):
        with b:
            b.set_clocks(low)
            b.sysfs.write(f"{fake.gpu_dir}/governor", "performance")  # someone changes the governor
            raise RuntimeError("boom")
    assert fake.state() == before


def test_restore_after_failed_set_clocks(tmp_path):
    fb = build_fake_board("jetson-agx-orin-64gb", 5, tmp_path / "r")
    b = JetsonBackend(None, fb.root)
    low, _ = _low_high(b)
    # The BPMP raises its EMC floor behind our back: the EMC write is refused after the GPU was pinned.
    fb.write_raw(fb.paths.emc_min_rate_file, 665600000)
    before = fb.state()
    with pytest.raises(CloneError, match=r"emc clock: write to .*/clk/emc/rate refused"):
        with b:
            b.set_clocks(low)
    assert fb.state() == before


def test_signal_handlers_restore_then_chain_and_come_back(tmp_path):
    fb = build_fake_board("jetson-orin-nx-16gb", 6, tmp_path / "r")
    before = fb.state()
    seen = []

    class Stop(Exception):
        pass

    def previous(signum, frame):
        seen.append((signum, fb.state() == before))  # clocks already restored when it runs
        raise Stop

    old = signal.signal(signal.SIGTERM, previous)
    try:
        b = JetsonBackend(None, fb.root)
        with pytest.raises(Stop):
            with b:
                assert signal.getsignal(signal.SIGTERM) == b._on_signal
                b.set_clocks(_low_high(b)[0])
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)  # the handler runs before this returns
        assert seen == [(signal.SIGTERM, True)]
        assert signal.getsignal(signal.SIGTERM) is previous
        assert fb.state() == before
    finally:
        signal.signal(signal.SIGTERM, old)


CHILD = """
import sys, time
from clone.runtime.device import Clocks
from clone.runtime.jetson.backend import JetsonBackend
b = JetsonBackend(None, sys.argv[1], sample_interval_s=0.01)
with b:
    a = {d: b.available_MHz(d) for d in ("gpu", "emc", "cpu")}
    b.set_clocks(Clocks(a["gpu"][0], a["emc"][0], a["cpu"][0]))
    print("READY", flush=True)
    time.sleep(60)
print("NOT REACHED", flush=True)
"""


@pytest.mark.parametrize("board,jp,sig", [
    ("jetson-orin-nano-8gb", 6, signal.SIGTERM),
    ("jetson-orin-nx-16gb", 5, signal.SIGTERM),
    ("jetson-agx-orin-64gb", 6, signal.SIGINT),
])
def test_restore_on_signal_in_subprocess(tmp_path, board, jp, sig):
    fb = build_fake_board(board, jp, tmp_path / "r")
    before = fb.state()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(fb.root)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "READY"
        assert fb.state() != before  # clocks pinned low
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert "NOT REACHED" not in out
    if sig == signal.SIGTERM:
        assert proc.returncode == -signal.SIGTERM  # default action re-raised after restore
    else:
        assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert fb.state() == before


# --------------------------------------------------------------------------------------------------
# Read-only and dry-run
# --------------------------------------------------------------------------------------------------


def test_read_only_tree_reads_and_measures_but_refuses(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(backend_mod, "_WARNED_READ_ONLY", set())
    fb = build_fake_board("jetson-orin-nano-8gb", 6, tmp_path / "r", module_W=6.0)
    fb.make_read_only()
    before = fb.state()
    with caplog.at_level(logging.WARNING, logger="clone.runtime.jetson"):
        b = JetsonBackend(None, fb.root)
        JetsonBackend(None, fb.root)  # said once per root
    warnings = [r for r in caplog.records if "read-only" in r.getMessage()]
    assert len(warnings) == 1 and "cannot write" in warnings[0].getMessage()
    assert b.read_only
    with b:
        assert b.get_clocks().gpu_MHz > 0 and b.available_MHz("emc")
        assert b.power_W() == pytest.approx(6.0, rel=2e-3)
        with pytest.raises(CloneError, match="read-only.*cannot set clocks"):
            b.set_clocks(_low_high(b)[0])
        b.begin_phase("decode")
        acc = b.end_phase()
        assert acc.phase == "decode" and acc.samples >= 2
    assert b.sysfs.writes == [] and fb.state() == before


def test_forced_read_only_root(tmp_path):
    fb = build_fake_board("jetson-agx-orin-64gb", 5, tmp_path / "r")
    b = JetsonBackend(None, SysfsRoot(fb.root, read_only=True))
    assert b.read_only and "opened read-only" in b.read_only_reason
    with pytest.raises(CloneError, match="read-only"):
        b.set_clock("gpu", 306)
    with pytest.raises(OSError):
        b.sysfs.write(f"{fb.gpu_dir}/min_freq", 306000000)


def test_dry_run_records_without_touching(tmp_path):
    fb = build_fake_board("jetson-orin-nx-16gb", 6, tmp_path / "r")
    before = fb.snapshot()
    b = JetsonBackend(None, fb.root, dry_run=True)
    with b:
        b.set_clocks(_low_high(b)[0])
    assert len(b.sysfs.written()) == 8 and fb.snapshot() == before


# --------------------------------------------------------------------------------------------------
# Energy
# --------------------------------------------------------------------------------------------------


def test_constant_power_integrates_to_P_times_T():
    P, T = 7.3, 12.0
    times = [0.0, 0.013, 0.5, 0.51, 3.2, 7.77, 11.0, 12.0]  # uneven sampling
    assert integrate((t, P) for t in times) == pytest.approx(P * T, rel=1e-12)
    acc = EnergyIntegrator()
    for t in times + [5.0]:  # a late, out-of-order sample is ignored
        acc.add(t, P)
    assert acc.energy_J == pytest.approx(P * T, rel=1e-12) and acc.time_s == T


def test_phase_split_with_recorded_rail_samples():
    now = [0.0]
    power = [4.0]
    s = PowerSampler(lambda: power[0], interval_s=1.0, clock=lambda: now[0])
    s.begin_phase("prefill")
    for t in (0.5, 1.0, 1.5, 2.0):
        now[0] = t
        s.sample()
    now[0] = 2.0
    pre = s.end_phase()
    power[0] = 9.0
    s.begin_phase("decode")
    for t in (2.25, 3.0, 4.0, 5.0):
        now[0] = t
        s.sample()
    dec = s.end_phase()
    assert (pre.time_s, pre.energy_J) == (2.0, pytest.approx(8.0))
    assert (dec.time_s, dec.energy_J) == (3.0, pytest.approx(27.0))
    with pytest.raises(CloneError, match="without begin_phase"):
        s.end_phase()


def test_sampler_thread_on_fake_rails_gives_P_times_T(fake):
    fake.set_power(6.5)
    b = JetsonBackend(None, fake.root, sample_interval_s=0.01)
    P = b.power_W()
    with b:
        b.begin_phase("decode")
        deadline = time.monotonic() + 10
        while b.sampler._acc.samples < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        acc = b.end_phase()
    assert acc.samples >= 5  # two boundary samples and at least three from the thread
    assert acc.energy_J == pytest.approx(P * acc.time_s, rel=0.01)
    assert P == pytest.approx(6.5, rel=2e-3)


def test_profiles_used_are_boards():
    for name in BOARDS:
        assert load_board(name).power_rails.sensor == "INA3221"
