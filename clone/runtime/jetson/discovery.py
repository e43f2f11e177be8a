"""Find a Jetson's control files: board, JetPack, GPU devfreq, cpufreq, EMC, nvpmodel, power rails.

Everything is looked up through a SysfsRoot, so the same code runs on a board and on a fake tree.
Paths come from the board profile (edge_profiles/*.yaml, `sysfs.jetpack.<N>`); the GPU node is also
found by scanning /sys/class/devfreq/* for a device whose of_node name is gpu/ga10b, because its name
changed between JetPack 5 (17000000.ga10b) and 6 (17000000.gpu) and may change again. Each missing
piece becomes a one-line message in `Discovery.problems` rather than an exception, so a partial board
(no debugfs, no rails) still reads what it can; `require()` turns the problems into a CloneError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from clone.errors import CloneError
from clone.profiles import Profile, SysfsPaths, load_board
from clone.runtime.jetson.sysfs import SysfsRoot

DT_MODEL_FILES = ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model")
DT_COMPATIBLE_FILES = ("/proc/device-tree/compatible", "/sys/firmware/devicetree/base/compatible")
L4T_RELEASE_FILE = "/etc/nv_tegra_release"
NVPMODEL_STATUS_FILE = "/var/lib/nvpmodel/status"
DEVFREQ_SCAN_GLOB = "/sys/class/devfreq/*"
GPU_OF_NODE_NAMES = ("gpu", "ga10b")
# L4T major release -> JetPack major (NVIDIA Jetson Linux release notes: R34/R35 are JetPack 5.x,
# R36 is JetPack 6.x).
L4T_TO_JETPACK = {34: 5, 35: 5, 36: 6}

# Module part numbers in the device-tree compatible string -> (profile, note when only approximate).
# p3767 is the Orin NX / Orin Nano module family, p3701 the AGX Orin module (NVIDIA module datasheets
# and the Jetson Linux developer guide's board table).
MODULE_PROFILES: dict[str, tuple[str, str | None]] = {
    "p3767-0000": ("jetson-orin-nx-16gb", None),
    "p3767-0001": ("jetson-orin-nx-16gb", "Orin NX 8 GB has no profile; using the Orin NX 16 GB one"),
    "p3767-0003": ("jetson-orin-nano-8gb", None),
    "p3767-0004": ("jetson-orin-nano-8gb", "Orin Nano 4 GB has no profile; using the 8 GB one"),
    "p3767-0005": ("jetson-orin-nano-8gb", None),
    "p3701-0005": ("jetson-agx-orin-64gb", None),
    "p3701-0000": ("jetson-agx-orin-64gb", "AGX Orin 32 GB has no profile; using the 64 GB one"),
    "p3701-0004": ("jetson-agx-orin-64gb", "AGX Orin 32 GB has no profile; using the 64 GB one"),
}
MODEL_KEYWORDS = (
    ("agx orin", "jetson-agx-orin-64gb"),
    ("orin nx", "jetson-orin-nx-16gb"),
    ("orin nano", "jetson-orin-nano-8gb"),
)
_MODULE_RE = re.compile(r"p(?:3701|3767)-\d{4}")


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoardId:
    model: str
    compatible: tuple[str, ...]
    profile_name: str | None
    note: str | None = None


@dataclass(frozen=True)
class GpuNode:
    devfreq_dir: str
    load_file: str | None
    load_full_scale: int
    found_by: str


@dataclass(frozen=True)
class CpuPolicy:
    dir: str
    cpus: tuple[int, ...]


@dataclass(frozen=True)
class EmcFiles:
    rate: str
    min_rate: str
    max_rate: str
    rate_locked: str
    possible_rates: str


@dataclass(frozen=True)
class NvpMode:
    id: int
    name: str
    gpu_max_Hz: int | None
    emc_max_Hz: int | None
    cpu_max_kHz: int | None


@dataclass(frozen=True)
class NvpModel:
    conf: str
    modes: dict[int, NvpMode]
    default_id: int | None
    current_id: int | None
    current_from: str

    @property
    def current(self) -> NvpMode | None:
        return self.modes.get(self.current_id) if self.current_id is not None else None


@dataclass(frozen=True)
class Rail:
    name: str
    hwmon_dir: str
    channel: int
    volt_file: str
    curr_file: str


@dataclass
class Discovery:
    board: BoardId | None
    profile: Profile | None
    jetpack: int | None
    jetpack_from: str
    gpu: GpuNode | None = None
    cpu: tuple[CpuPolicy, ...] = ()
    emc: EmcFiles | None = None
    nvpmodel: NvpModel | None = None
    rails: dict[str, Rail] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def require(self, *pieces: str) -> None:
        """Raise one CloneError naming every missing piece among gpu, cpu, emc, rails, profile."""
        missing = []
        for p in pieces:
            value = getattr(self, p)
            if not value:
                missing.append(p)
        if missing:
            detail = "; ".join(self.problems) or "not found"
            raise CloneError(f"Jetson backend: missing {', '.join(missing)}: {detail}")

    def summary(self) -> list[str]:
        """Human-readable lines for logs and `--device jetson` reports."""
        b = self.board
        mode = self.nvpmodel.current if self.nvpmodel else None
        lines = [
            f"board: {b.model if b else 'unknown'} -> "
            f"profile {self.profile.name if self.profile else None}",
            f"JetPack: {self.jetpack} ({self.jetpack_from})",
            f"GPU devfreq: {self.gpu.devfreq_dir if self.gpu else None}",
            f"CPU policies: {', '.join(p.dir for p in self.cpu) or None}",
            f"EMC: {self.emc.rate if self.emc else None}",
            f"nvpmodel: {mode.name if mode else None}",
            f"rails: {', '.join(self.rails) or None}",
        ]
        return lines + [f"problem: {p}" for p in self.problems]


# --------------------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------------------


def _first(sysfs: SysfsRoot, paths: tuple[str, ...]) -> str | None:
    for p in paths:
        text = sysfs.read_optional(p)
        if text:
            return text
    return None


def detect_board(sysfs: SysfsRoot) -> BoardId | None:
    """The board from the device tree (model and compatible strings); None when it is no Tegra."""
    model = _first(sysfs, DT_MODEL_FILES) or ""
    raw_compat = None
    for p in DT_COMPATIBLE_FILES:
        if sysfs.is_file(p):
            with open(sysfs.real(p), "rb") as f:
                raw_compat = f.read().decode("utf-8", "replace")
            break
    compatible = tuple(c for c in (raw_compat or "").split("\x00") if c.strip())
    if not model and not compatible:
        return None
    is_tegra = any("tegra" in c for c in compatible) or "jetson" in model.lower()
    if not is_tegra:
        return None
    for module in (m for c in compatible for m in _MODULE_RE.findall(c)):
        if module in MODULE_PROFILES:
            name, note = MODULE_PROFILES[module]
            return BoardId(model, compatible, name, note)
    low = model.lower()
    for key, name in MODEL_KEYWORDS:
        if key in low:
            return BoardId(model, compatible, name, "matched by model string, not module number")
    known = ", ".join(sorted(MODULE_PROFILES))
    return BoardId(model, compatible, None,
                   f"no profile for this board (model '{model}'; known modules: {known})")


def detect_jetpack(sysfs: SysfsRoot, profile: Profile | None = None) -> tuple[int | None, str]:
    """JetPack major version from /etc/nv_tegra_release, else from which GPU directory exists."""
    text = sysfs.read_optional(L4T_RELEASE_FILE)
    if text:
        m = re.search(r"R(\d+)", text)
        if m and int(m.group(1)) in L4T_TO_JETPACK:
            return L4T_TO_JETPACK[int(m.group(1))], f"{L4T_RELEASE_FILE} R{m.group(1)}"
    candidates = profile.sysfs if profile is not None else {}
    for jp in sorted(candidates, reverse=True):
        if sysfs.is_dir(candidates[jp].gpu_devfreq_dir):
            return jp, f"layout probe ({candidates[jp].gpu_devfreq_dir})"
    for entry in sysfs.glob(DEVFREQ_SCAN_GLOB):
        base = entry.rsplit("/", 1)[-1]
        if base == "17000000.gpu":
            return 6, f"layout probe ({entry})"
        if base == "17000000.ga10b":
            return 5, f"layout probe ({entry})"
    return None, f"{L4T_RELEASE_FILE} missing and no known GPU devfreq directory"


def find_gpu(sysfs: SysfsRoot, paths: SysfsPaths | None) -> tuple[GpuNode | None, str | None]:
    """The GPU devfreq directory: the profile's path if present, else a scan by of_node name."""
    names = tuple(paths.gpu_devfreq_of_node_names) if paths else GPU_OF_NODE_NAMES
    full_scale = paths.gpu_load_full_scale if paths else 1000
    found, how = None, ""
    if paths and sysfs.is_file(f"{paths.gpu_devfreq_dir}/available_frequencies"):
        found, how = sysfs.realpath(paths.gpu_devfreq_dir), "profile path"
    else:
        scan = paths.gpu_devfreq_search_glob if paths else DEVFREQ_SCAN_GLOB
        for entry in sysfs.glob(scan):
            name = sysfs.read_optional(f"{entry}/device/of_node/name")
            if name in names:
                found, how = sysfs.realpath(entry), f"scan of {scan} (of_node name {name})"
                break
    if found is None:
        where = paths.gpu_devfreq_dir if paths else DEVFREQ_SCAN_GLOB
        return None, (f"GPU devfreq node not found ({where}, nor a {DEVFREQ_SCAN_GLOB} entry whose "
                      f"device/of_node/name is {'/'.join(names)})")
    load = None
    for cand in ((paths.gpu_load_file,) if paths else ()) + (f"{found}/device/load",):
        if sysfs.is_file(cand):
            load = cand
            break
    return GpuNode(found, load, full_scale, how), None


def find_cpu_policies(
    sysfs: SysfsRoot, paths: SysfsPaths | None
) -> tuple[tuple[CpuPolicy, ...], str | None]:
    """One entry per cpufreq policy (a cluster), found through the per-CPU cpufreq links."""
    pattern = paths.cpufreq_dir_pattern if paths else "/sys/devices/system/cpu/cpu{cpu}/cpufreq"
    by_dir: dict[str, list[int]] = {}
    for d in sysfs.glob(pattern.format(cpu="[0-9]*")):
        m = re.search(r"cpu(\d+)/cpufreq$", d)
        if not m or not sysfs.is_file(f"{d}/scaling_max_freq"):
            continue
        by_dir.setdefault(sysfs.realpath(d), []).append(int(m.group(1)))
    policies = tuple(sorted((CpuPolicy(k, tuple(sorted(v))) for k, v in by_dir.items()),
                            key=lambda p: p.cpus[0]))
    if not policies:
        return (), f"no cpufreq policies under {pattern.format(cpu='*')}"
    return policies, None


def find_emc(sysfs: SysfsRoot, paths: SysfsPaths | None) -> tuple[EmcFiles | None, str | None]:
    if paths is None:
        return None, "EMC: no profile, so no BPMP debugfs paths"
    files = EmcFiles(paths.emc_rate_file, paths.emc_min_rate_file, paths.emc_max_rate_file,
                     paths.emc_rate_locked_file, paths.emc_possible_rates_file)
    missing = [f for f in (files.rate, files.possible_rates) if sysfs.read_optional(f) is None]
    if missing:
        return None, (f"EMC: cannot read {', '.join(missing)} (BPMP debugfs: needs root and "
                      "debugfs mounted at /sys/kernel/debug)")
    return files, None


def parse_nvpmodel_conf(text: str) -> tuple[dict[int, NvpMode], int | None]:
    """POWER_MODEL blocks of /etc/nvpmodel.conf: id, name and the GPU/EMC/CPU MAX_FREQ lines."""
    modes: dict[int, NvpMode] = {}
    default = None
    cur: dict | None = None

    def close() -> None:
        if cur is not None:
            modes[cur["id"]] = NvpMode(cur["id"], cur["name"], cur.get("gpu"), cur.get("emc"),
                                       cur.get("cpu"))

    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        head = re.match(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=(\S+)\s*>", line)
        if head:
            close()
            cur = {"id": int(head.group(1)), "name": head.group(2)}
            continue
        pm = re.match(r"<\s*PM_CONFIG\s+DEFAULT=(\d+)\s*>", line)
        if pm:
            close()
            cur = None
            default = int(pm.group(1))
            continue
        if line.startswith("<"):
            close()
            cur = None
            continue
        parts = line.split()
        if cur is None or len(parts) != 3 or parts[1] != "MAX_FREQ":
            continue
        try:
            value = int(parts[2])
        except ValueError:
            continue
        value = None if value <= 0 else value  # -1 / 0 mean "no cap" in nvpmodel.conf
        if parts[0] == "GPU":
            cur["gpu"] = value
        elif parts[0] == "EMC":
            cur["emc"] = value
        elif parts[0].startswith("CPU_") and "cpu" not in cur:
            cur["cpu"] = value
    close()
    return modes, default


def read_nvpmodel(sysfs: SysfsRoot, paths: SysfsPaths | None) -> tuple[NvpModel | None, str | None]:
    conf = paths.nvpmodel_conf if paths else "/etc/nvpmodel.conf"
    text = sysfs.read_optional(conf)
    if text is None:
        return None, f"nvpmodel: {conf} not found"
    modes, default = parse_nvpmodel_conf(text)
    if not modes:
        return None, f"nvpmodel: no POWER_MODEL blocks in {conf}"
    status = sysfs.read_optional(NVPMODEL_STATUS_FILE)
    m = re.search(r"pmode:\s*(\d+)", status or "")
    if m:
        current, source = int(m.group(1)), NVPMODEL_STATUS_FILE
    else:
        current, source = default, f"{conf} PM_CONFIG DEFAULT ({NVPMODEL_STATUS_FILE} missing)"
    return NvpModel(conf, modes, default, current, source), None


def find_rails(sysfs: SysfsRoot, paths: SysfsPaths | None) -> tuple[dict[str, Rail], str | None]:
    """INA3221 channels through hwmon: in{N}_label names a rail, in{N}_input mV, curr{N}_input mA."""
    pattern = paths.hwmon_glob if paths else "/sys/bus/i2c/devices/*/hwmon/hwmon*"
    rails: dict[str, Rail] = {}
    for hw in sysfs.glob(pattern):
        for entry in sysfs.listdir(hw):
            m = re.fullmatch(r"in(\d+)_label", entry)
            if not m:
                continue
            label = sysfs.read_optional(f"{hw}/{entry}") or ""
            n = int(m.group(1))
            # NC = channel not connected; "sum of shunt voltages" is the INA3221 summing channel.
            if not label or label == "NC" or label.lower().startswith("sum of shunt"):
                continue
            volt, curr = f"{hw}/in{n}_input", f"{hw}/curr{n}_input"
            if sysfs.is_file(volt) and sysfs.is_file(curr):
                rails.setdefault(label, Rail(label, hw, n, volt, curr))
    if not rails:
        return {}, f"no INA3221 rails under {pattern}"
    return rails, None


# --------------------------------------------------------------------------------------------------
# Whole board
# --------------------------------------------------------------------------------------------------


def discover(
    sysfs: SysfsRoot,
    profile: Profile | str | None = None,
    jetpack: int | str | None = None,
) -> Discovery:
    """Everything the backend needs; what is missing is listed in `problems`."""
    board = detect_board(sysfs)
    problems: list[str] = []
    if isinstance(profile, str):
        profile = load_board(profile)
    if profile is None and board is not None and board.profile_name:
        profile = load_board(board.profile_name)
    elif profile is not None and board is not None and board.profile_name not in (None, profile.name):
        problems.append(f"profile {profile.name} was given but the board looks like "
                        f"{board.profile_name} ({board.model})")
    if board is not None and board.note and board.profile_name is None:
        problems.append(f"board: {board.note}")
    if profile is None:
        problems.append("no board profile: pass one (e.g. --profile jetson-orin-nx-16gb)")
    if jetpack is not None:
        jp: int | None = int(str(jetpack).split(".")[0])
        jp_from = "given"
    else:
        jp, jp_from = detect_jetpack(sysfs, profile)
    paths = None
    if profile is not None and jp is not None:
        try:
            paths = profile.sysfs_paths(jp)
        except CloneError as exc:
            problems.append(str(exc))
    elif jp is None:
        problems.append(f"JetPack version unknown: {jp_from}")
    d = Discovery(board, profile, jp, jp_from)
    d.gpu, p1 = find_gpu(sysfs, paths)
    d.cpu, p2 = find_cpu_policies(sysfs, paths)
    d.emc, p3 = find_emc(sysfs, paths)
    d.nvpmodel, p4 = read_nvpmodel(sysfs, paths)
    d.rails, p5 = find_rails(sysfs, paths)
    d.problems = [p for p in problems + [p1, p2, p3, p4, p5] if p]
    return d


def detect(sysfs: SysfsRoot | None = None) -> Discovery | None:
    """`--device auto`: a Discovery when this root looks like a Jetson, None when it does not.

    A root counts as a Jetson when its device tree names a Tegra/Jetson board or an NVIDIA GPU devfreq
    node exists; anything else (a laptop, CI) gives None and the caller falls back
    to the simulated board.
    """
    sysfs = sysfs if sysfs is not None else SysfsRoot()
    if detect_board(sysfs) is None and not _nvidia_gpu_node(sysfs):
        return None
    return discover(sysfs)


def _nvidia_gpu_node(sysfs: SysfsRoot) -> bool:
    """A devfreq GPU that is NVIDIA's: of_node name ga10b, or gpu with an nvidia compatible string
    (other ARM boards name their Mali GPU node "gpu" too)."""
    for entry in sysfs.glob(DEVFREQ_SCAN_GLOB):
        name = sysfs.read_optional(f"{entry}/device/of_node/name")
        compat = sysfs.read_optional(f"{entry}/device/of_node/compatible") or ""
        if name == "ga10b" or (name in GPU_OF_NODE_NAMES and "nvidia," in compat):
            return True
    return False
