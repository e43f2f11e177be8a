"""Fake Jetson sysfs/debugfs trees for tests and `--fake-board`, built from the board profiles.

A tree reproduces the files the backend touches on an Orin Nano, Orin NX or AGX Orin under JetPack 5
or 6 (../shared/reference/jetson-clocks.md; layout as jetson-stats reads it): device tree model and
compatible strings, /etc/nv_tegra_release, the GPU devfreq node with its /sys/class/devfreq link and
of_node, per-cluster cpufreq policies linked from cpuN/cpufreq, the BPMP EMC debugfs files,
/etc/nvpmodel.conf with /var/lib/nvpmodel/status, and INA3221 rails under hwmon. Frequency tables,
power modes and rails come from the profile; all values are synthetic.

Symlinks are relative, so a SysfsRoot pointed at the tree resolves them inside it. Plain files
accept any write, so `FakeKernel` (installed automatically from the marker file) refuses what the
kernel refuses: min above max, unlisted frequencies, unknown governors, EMC rates the BPMP does not
list, writes to read-only attributes.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from clone.errors import CloneError
from clone.profiles import Profile, SysfsPaths, load_board
from clone.runtime.jetson.sysfs import FAKE_MARKER, SysfsRoot

BOARDS = ("jetson-orin-nano-8gb", "jetson-orin-nx-16gb", "jetson-agx-orin-64gb")
JETPACKS = (5, 6)

# Device-tree identity per board: model string and module/carrier part numbers (NVIDIA Jetson Linux
# developer guide board table: p3767-0005 Orin Nano devkit module, p3767-0000 Orin NX 16 GB,
# p3701-0005 AGX Orin 64 GB; carriers p3768 and p3737).
IDENTITY = {
    "jetson-orin-nano-8gb": ("NVIDIA Jetson Orin Nano Developer Kit", "p3768-0000", "p3767-0005"),
    "jetson-orin-nx-16gb": ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit",
                            "p3768-0000", "p3767-0000"),
    "jetson-agx-orin-64gb": ("Jetson AGX Orin Developer Kit", "p3737-0000", "p3701-0005"),
}
L4T_RELEASE = {  # synthetic lines in the format of /etc/nv_tegra_release
    5: "# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref, EABI: aarch64, DATE: synthetic",
    6: "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: synthetic",
}
GPU_GOVERNORS = "nvhost_podgov userspace performance simple_ondemand"
CPU_GOVERNORS = "conservative ondemand userspace powersave performance schedutil"
# Share of module power per rail (synthetic). Orin NX/Nano: VDD_IN is the module input and the
# others are parts of it; AGX Orin has no input rail, so its shares add up to the module power.
RAIL_SHARES = {
    "VDD_IN": 1.0, "VDD_CPU_GPU_CV": 0.35, "VDD_SOC": 0.30,
    "VDD_GPU_SOC": 0.45, "VDD_CPU_CV": 0.20, "VIN_SYS_5V0": 0.28, "VDDQ_VDD2_1V8AO": 0.07,
}
RAIL_MV = {"VDDQ_VDD2_1V8AO": 1800}
READ_ONLY_NAMES = {
    "cur_freq", "available_frequencies", "available_governors", "scaling_cur_freq",
    "scaling_available_frequencies", "scaling_available_governors", "cpuinfo_min_freq",
    "cpuinfo_max_freq", "possible_rates", "related_cpus", "affected_cpus", "name", "load",
}


def _hz(MHz: float) -> int:
    return int(round(MHz * 1e6))


def _khz(MHz: float) -> int:
    return int(round(MHz * 1e3))


def _modes_for(profile: Profile, jetpack: int):
    return [m for m in profile.modes
            if m.min_jetpack is None or int(str(m.min_jetpack).split(".")[0]) <= jetpack]


@dataclass
class FakeBoard:
    root: Path
    profile: Profile
    jetpack: int
    paths: SysfsPaths
    gpu_dir: str
    tables_MHz: dict[str, tuple[float, ...]]
    mode_name: str

    def sysfs(self, **kw) -> SysfsRoot:
        return SysfsRoot(self.root, **kw)

    def real(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def read(self, path: str) -> str:
        return self.real(path).read_text().strip()

    def write_raw(self, path: str, value: str | int) -> None:
        """Change a file behind the backend's back (as the board itself would)."""
        self.real(path).write_text(f"{value}\n")

    def snapshot(self) -> dict[str, str]:
        """Every regular file's contents (board path -> text), to check that state comes back."""
        out = {}
        for dirpath, _dirs, files in os.walk(self.root):
            for f in files:
                p = Path(dirpath) / f
                if p.is_symlink() or f == FAKE_MARKER:
                    continue
                out["/" + str(p.relative_to(self.root))] = p.read_text(errors="replace")
        return out

    def state(self) -> dict[str, str]:
        """The controllable state: every file except what the hardware moves by itself (current
        frequencies, loads, rail readings), which a restore cannot and need not bring back."""
        moving = ("cur_freq", "scaling_cur_freq", "load", "_input")
        return {k: v for k, v in self.snapshot().items() if not k.endswith(moving)}

    def rail_files(self) -> dict[str, tuple[str, str]]:
        """Rail name -> (voltage file, current file), board paths."""
        out = {}
        for hw in sorted(self.root.glob("sys/bus/i2c/devices/*/hwmon/hwmon*")):
            for label in sorted(hw.glob("in*_label")):
                name = label.read_text().strip()
                n = label.name[2:-len("_label")]
                if name in RAIL_SHARES:
                    b = "/" + str(hw.relative_to(self.root))
                    out[name] = (f"{b}/in{n}_input", f"{b}/curr{n}_input")
        return out

    def set_power(self, module_W: float) -> None:
        """Rails consistent with a module power (VDD_IN, or the sum on AGX Orin)."""
        for name, (vf, cf) in self.rail_files().items():
            mv = RAIL_MV.get(name, 5000)
            mw = module_W * 1000 * RAIL_SHARES[name]
            self.write_raw(vf, mv)
            self.write_raw(cf, int(round(mw * 1000 / mv)))

    def make_read_only(self) -> None:
        """Drop the write bits of every file: what a non-root user sees on a board."""
        for dirpath, _dirs, files in os.walk(self.root):
            for f in files:
                p = Path(dirpath) / f
                if not p.is_symlink():
                    p.chmod(0o444)


def build_fake_board(
    board: str | Profile,
    jetpack: int,
    dest: str | os.PathLike,
    *,
    mode: str | None = None,
    gpu_dir: str | None = None,
    with_emc: bool = True,
    with_rails: bool = True,
    with_release_file: bool = True,
    module_W: float | None = None,
) -> FakeBoard:
    """Write a fake tree for a board profile and JetPack major (5 or 6) under dest (emptied first).

    gpu_dir moves the GPU devfreq node elsewhere (the backend must then find it by scanning
    /sys/class/devfreq); with_emc/with_rails/with_release_file=False leave those parts out.
    """
    profile = load_board(board) if isinstance(board, str) else board
    jetpack = int(jetpack)
    paths = profile.sysfs_paths(jetpack)
    modes = _modes_for(profile, jetpack)
    if not modes:
        raise CloneError(f"profile {profile.name}: no power mode available on JetPack {jetpack}")
    want = mode or profile.default_mode
    current = next((m for m in modes if m.name.lower() == want.lower()), modes[0])
    caps = {d: max(m.max_MHz(d) for m in modes) for d in ("gpu", "emc", "cpu")}
    tables = {d: profile.clocks.up_to(d, caps[d]) for d in caps}

    root = Path(dest)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)

    def put(path: str, value: object) -> None:
        p = root / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"{value}\n")

    def link(path: str, target: str) -> None:
        """A relative symlink from board path `path` to board path `target`."""
        p = root / path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        rel = os.path.relpath(root / target.lstrip("/"), p.parent)
        p.symlink_to(rel)

    # Identity and release.
    unknown = (profile.description, "p0000-0000", "p0000-0000")
    model, carrier, module = IDENTITY.get(profile.name, unknown)
    dt = "/sys/firmware/devicetree/base"
    put(f"{dt}/model", model + "\x00")
    compat = f"nvidia,{carrier}+{module}\x00nvidia,{module}\x00nvidia,tegra234\x00"
    (root / dt.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (root / dt.lstrip("/") / "compatible").write_bytes(compat.encode())
    link("/proc/device-tree", dt)
    if with_release_file:
        put("/etc/nv_tegra_release", L4T_RELEASE.get(jetpack, L4T_RELEASE[6]))

    # GPU devfreq node, its device, of_node and class link.
    node_name = "ga10b" if jetpack == 5 else "gpu"
    devfreq = gpu_dir or paths.gpu_devfreq_dir
    device = devfreq.rsplit("/devfreq/", 1)[0]
    gtab = tables["gpu"]
    put(f"{devfreq}/available_frequencies", " ".join(str(_hz(f)) for f in gtab))
    put(f"{devfreq}/available_governors", GPU_GOVERNORS)
    put(f"{devfreq}/governor", "nvhost_podgov")
    put(f"{devfreq}/min_freq", _hz(gtab[0]))
    put(f"{devfreq}/max_freq", _hz(current.gpu_max_MHz))
    put(f"{devfreq}/cur_freq", _hz(gtab[len(gtab) // 2]))
    put(f"{dt}/{node_name}@17000000/name", node_name + "\x00")
    put(f"{dt}/{node_name}@17000000/compatible", "nvidia,ga10b\x00")
    link(f"{device}/of_node", f"{dt}/{node_name}@17000000")
    link(f"{devfreq}/device", device)
    link(f"/sys/class/devfreq/{devfreq.rsplit('/', 1)[-1]}", devfreq)
    put(f"{device}/load", 120)
    if jetpack == 5:
        put(paths.gpu_load_file, 120)
    # A decoy devfreq device (the video image compositor) the scan must skip.
    put(f"{dt}/vic@15340000/name", "vic\x00")
    put(f"{dt}/vic@15340000/compatible", "nvidia,tegra234-vic\x00")
    vic = "/sys/devices/platform/15340000.vic"
    put(f"{vic}/devfreq/15340000.vic/available_frequencies", "115200000 729600000")
    put(f"{vic}/devfreq/15340000.vic/cur_freq", 115200000)
    link(f"{vic}/of_node", f"{dt}/vic@15340000")
    link(f"{vic}/devfreq/15340000.vic/device", vic)
    link("/sys/class/devfreq/15340000.vic", f"{vic}/devfreq/15340000.vic")

    # CPU: clusters of four cores, one cpufreq policy each; offline cores have no cpufreq link.
    ctab = tables["cpu"]
    cores = profile.compute.cpu_cores
    cpu_root = "/sys/devices/system/cpu"
    for first in range(0, cores, 4):
        cluster = list(range(first, min(first + 4, cores)))
        pol = f"{cpu_root}/cpufreq/policy{first}"
        put(f"{pol}/scaling_available_frequencies", " ".join(str(_khz(f)) for f in ctab))
        put(f"{pol}/scaling_available_governors", CPU_GOVERNORS)
        put(f"{pol}/scaling_governor", "schedutil")
        put(f"{pol}/cpuinfo_min_freq", _khz(ctab[0]))
        put(f"{pol}/cpuinfo_max_freq", _khz(ctab[-1]))
        put(f"{pol}/scaling_min_freq", _khz(ctab[0]))
        put(f"{pol}/scaling_max_freq", _khz(current.cpu_max_MHz))
        put(f"{pol}/scaling_cur_freq", _khz(current.cpu_max_MHz))
        put(f"{pol}/scaling_setspeed", "<unsupported>")
        put(f"{pol}/related_cpus", " ".join(map(str, cluster)))
        online = [c for c in cluster if c < current.cpu_online_cores]
        put(f"{pol}/affected_cpus", " ".join(map(str, online)))
        for c in cluster:
            put(f"{cpu_root}/cpu{c}/online", 1 if c in online else 0)
            if c in online:
                link(paths.cpufreq_dir(c), pol)

    # EMC through the BPMP debugfs: rates in Hz, possible_rates in kHz.
    if with_emc:
        etab = tables["emc"]
        below = [f for f in etab if f <= current.emc_max_MHz]
        put(paths.emc_possible_rates_file, " ".join(str(_khz(f)) for f in etab))
        put(paths.emc_min_rate_file, _hz(etab[0]))
        put(paths.emc_max_rate_file, _hz(current.emc_max_MHz))
        put(paths.emc_rate_file, _hz(below[-2] if len(below) > 1 else below[-1]))
        put(paths.emc_rate_locked_file, 0)

    # nvpmodel.
    conf = ["# synthetic nvpmodel.conf built from the board profile", "< SOC_FAMILY NAME=tegra234 >"]
    for m in modes:
        conf += [f"< POWER_MODEL ID={m.nvpmodel_id} NAME={m.name} >"]
        conf += [f"CPU_ONLINE CORE_{c} {1 if c < m.cpu_online_cores else 0}" for c in range(cores)]
        conf += [f"CPU_A78_{k} MIN_FREQ {_khz(ctab[0])}" for k in range(0, cores, 4)]
        conf += [f"CPU_A78_{k} MAX_FREQ {_khz(m.cpu_max_MHz)}" for k in range(0, cores, 4)]
        conf += [f"GPU MIN_FREQ {_hz(gtab[0])}", f"GPU MAX_FREQ {_hz(m.gpu_max_MHz)}",
                 f"EMC MAX_FREQ {_hz(m.emc_max_MHz)}"]
    default_id = next(m.nvpmodel_id for m in modes if m.name == current.name)
    conf += [f"< PM_CONFIG DEFAULT={default_id} >"]
    put(paths.nvpmodel_conf, "\n".join(conf))
    put("/var/lib/nvpmodel/status", f"pmode:{current.nvpmodel_id:04d}")

    # INA3221 rails: channels 1-3 and the summing channel 7 of each sensor.
    if with_rails:
        names = list(profile.power_rails.rails)
        sensors = [names[:3], names[3:]] if len(names) > 3 else [names]
        for s, chans in enumerate(sensors):
            dev = f"/sys/bus/i2c/devices/1-004{s}"
            hw = f"{dev}/hwmon/hwmon{s + 1}"
            put(f"{dev}/name", "ina3221")
            put(f"{hw}/name", "ina3221")
            labels = chans + ["NC"] * (3 - len(chans)) if s == 0 else ["NC"] + chans + ["NC"]
            for n, label in enumerate(labels[:3], start=1):
                put(f"{hw}/in{n}_label", label)
                put(f"{hw}/in{n}_input", 0)
                put(f"{hw}/curr{n}_input", 0)
            put(f"{hw}/in7_label", "sum of shunt voltages")
            put(f"{hw}/in7_input", 0)

    put(FAKE_MARKER, json.dumps({"profile": profile.name, "jetpack": jetpack, "mode": current.name}))
    fb = FakeBoard(root.resolve(), profile, jetpack, paths, devfreq, tables, current.name)
    if with_rails:
        if module_W is None:
            module_W = profile.power_model.power_W(
                gtab[len(gtab) // 2], current.emc_max_MHz, current.cpu_max_MHz, 0.1, 0.1, 0.1)
        fb.set_power(module_W)
    return fb


class FakeKernel:
    """Write checks a plain file cannot make: what the devfreq, cpufreq and BPMP drivers refuse."""

    def __init__(self, info: dict | None = None) -> None:
        self.info = info or {}

    @classmethod
    def from_marker(cls, marker: Path) -> "FakeKernel":
        try:
            return cls(json.loads(marker.read_text()))
        except (OSError, ValueError):
            return cls()

    @staticmethod
    def _einval(path: str, why: str) -> OSError:
        return OSError(errno.EINVAL, f"Invalid argument ({why})", path)

    def check(self, sysfs: SysfsRoot, path: str, value: str) -> None:
        real = sysfs.realpath(path)
        d, name = real.rsplit("/", 1)
        if name in READ_ONLY_NAMES or name.endswith(("_label", "_input")):
            raise PermissionError(errno.EACCES, "Permission denied (read-only attribute)", path)
        if name in ("min_freq", "max_freq") and sysfs.is_file(f"{d}/available_frequencies"):
            self._check_range(sysfs, path, value, d, "min_freq", "max_freq", "available_frequencies")
        elif name in ("scaling_min_freq", "scaling_max_freq"):
            self._check_range(sysfs, path, value, d, "scaling_min_freq", "scaling_max_freq",
                              "scaling_available_frequencies")
        elif name == "governor" and sysfs.is_file(f"{d}/available_governors"):
            if value not in sysfs.read(f"{d}/available_governors").split():
                raise self._einval(path, f"unknown governor {value}")
        elif name == "scaling_governor":
            if value not in sysfs.read(f"{d}/scaling_available_governors").split():
                raise self._einval(path, f"unknown governor {value}")
        elif name == "scaling_setspeed":
            if sysfs.read(f"{d}/scaling_governor") != "userspace":
                raise self._einval(path, "governor is not userspace")
        elif name == "mrq_rate_locked":
            if value not in ("0", "1"):
                raise self._einval(path, "expected 0 or 1")
        elif name in ("rate", "min_rate", "max_rate") and d.endswith("/clk/emc"):
            self._check_emc(sysfs, path, value, d, name)

    def _int(self, path: str, value: str) -> int:
        try:
            return int(value)
        except ValueError:
            raise self._einval(path, f"not an integer: {value!r}") from None

    def _check_range(self, sysfs, path, value, d, lo_name, hi_name, avail_name) -> None:
        v = self._int(path, value)
        avail = sysfs.read_ints(f"{d}/{avail_name}")
        if v not in avail:
            raise self._einval(path, f"{v} not in {avail_name}")
        lo, hi = sysfs.read_int(f"{d}/{lo_name}"), sysfs.read_int(f"{d}/{hi_name}")
        if path.endswith(lo_name) and v > hi:
            raise self._einval(path, f"min {v} above max {hi}")
        if path.endswith(hi_name) and v < lo:
            raise self._einval(path, f"max {v} below min {lo}")

    def _check_emc(self, sysfs, path, value, d, name) -> None:
        v = self._int(path, value)
        possible = sysfs.read_ints(d.rsplit("/clk/emc", 1)[0] + "/emc/possible_rates")
        possible_hz = [p * 1000 if max(possible) < 10**7 else p for p in possible]
        if name == "rate":
            if v not in possible_hz:
                raise self._einval(path, f"{v} Hz not in possible_rates")
            lo, hi = sysfs.read_int(f"{d}/min_rate"), sysfs.read_int(f"{d}/max_rate")
            if not lo <= v <= hi:
                raise self._einval(path, f"{v} Hz outside [{lo}, {hi}]")

    def after(self, sysfs: SysfsRoot, path: str, value: str) -> None:
        real = sysfs.realpath(path)
        d, name = real.rsplit("/", 1)
        if name in ("min_freq", "max_freq") and sysfs.is_file(f"{d}/cur_freq"):
            self._clamp(sysfs, d, "min_freq", "max_freq", "cur_freq")
        elif name in ("scaling_min_freq", "scaling_max_freq", "scaling_setspeed"):
            if name == "scaling_setspeed":
                sysfs.real(f"{d}/scaling_cur_freq").write_text(f"{value}\n")
            self._clamp(sysfs, d, "scaling_min_freq", "scaling_max_freq", "scaling_cur_freq")

    @staticmethod
    def _clamp(sysfs: SysfsRoot, d: str, lo: str, hi: str, cur: str) -> None:
        a, b, c = (sysfs.read_int(f"{d}/{x}") for x in (lo, hi, cur))
        sysfs.real(f"{d}/{cur}").write_text(f"{min(max(c, a), b)}\n")


def parse_fake_spec(spec: str) -> tuple[str, int]:
    """'BOARD[:JETPACK]' (e.g. 'jetson-orin-nano-8gb:6'; JetPack 6 by default) for --fake-board."""
    name, _, jp = spec.partition(":")
    if name not in BOARDS:
        raise CloneError(f"--fake-board: unknown board '{name}' (allowed: {', '.join(BOARDS)})")
    try:
        jetpack = int(jp) if jp else 6
    except ValueError:
        jetpack = -1
    if jetpack not in JETPACKS:
        raise CloneError(f"--fake-board: JetPack '{jp}' for {name} is not supported "
                         f"(allowed: {', '.join(map(str, JETPACKS))})")
    return name, jetpack


def main(argv: list[str] | None = None) -> int:
    """`python -m clone.runtime.jetson.faketree BOARD[:JETPACK] DEST`: write a tree to point
    CLONE_SYSFS_ROOT at (its kernel emulation comes with it through the marker file)."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m clone.runtime.jetson.faketree",
                                 description="Write a fake Jetson sysfs/debugfs tree.")
    ap.add_argument("board", help=f"BOARD[:JETPACK], BOARD one of {', '.join(BOARDS)}")
    ap.add_argument("dest", help="directory to (re)create")
    ap.add_argument("--mode", default=None, help="nvpmodel mode name (default: the profile's)")
    args = ap.parse_args(argv)
    try:
        name, jp = parse_fake_spec(args.board)
        fb = build_fake_board(name, jp, args.dest, mode=args.mode)
    except CloneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"fake {name} (JetPack {jp}, mode {fb.mode_name}) in {fb.root}; "
          f"use it with CLONE_SYSFS_ROOT={fb.root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
