"""Power tables: measured module power per clock setting (GPU x EMC x CPU) for the prefill and decode
phases, the paper's P_pre(f) and P_dec(f). The controller's reward is sum_phase P_phase(f) * T_phase.

File format: CSV with `# key: value` header lines (profile, mode, date, device, workload) and the
columns phase,gpu_MHz,emc_MHz,cpu_MHz,power_W,time_s (time of the reference workload at that setting).
Loading validates every row against the profile's clock table; a table measured on another profile or
mode is refused.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from clone.atomic import write_text_atomic
from clone.errors import CloneError
from clone.runtime.device import DOMAINS, Clocks

PHASES = ("prefill", "decode")
COLUMNS = ("phase", "gpu_MHz", "emc_MHz", "cpu_MHz", "power_W", "time_s")
REF_PROMPT_TOKENS = 256
REF_DECODE_TOKENS = 16

Setting = tuple[float, float, float]  # (gpu_MHz, emc_MHz, cpu_MHz)


def grid(profile: Any, mode: str | None = None, cpu_steps: int | None = 5) -> list[Setting]:
    """The settings a table covers: every GPU and EMC step of the mode, and cpu_steps CPU steps spread
    evenly over the CPU ladder (always including its lowest and highest; None = every step). The CPU
    only sets host (kernel-launch) time, so a handful of its ~20 steps spans the trade-off."""
    m = profile.mode(mode)
    cpus = profile.clock_choices("cpu", m.name)
    if cpu_steps and len(cpus) > cpu_steps:
        idx = sorted({round(i * (len(cpus) - 1) / (cpu_steps - 1)) for i in range(cpu_steps)})
        cpus = tuple(cpus[i] for i in idx)
    return [(g, e, c) for g in profile.clock_choices("gpu", m.name) for e in profile.clock_choices("emc", m.name)
            for c in cpus]


@dataclass
class PowerTable:
    profile: str
    mode: str
    date: str
    device: str
    workload: str
    rows: dict[tuple[str, Setting], tuple[float, float]] = field(default_factory=dict)  # -> (power_W, time_s)

    def power_W(self, phase: str, clocks: Setting | Clocks) -> float:
        key = (phase, _setting(clocks))
        if key not in self.rows:
            raise CloneError(f"power table ({self.profile}): no {phase} row for clocks {key[1]}")
        return self.rows[key][0]

    def time_s(self, phase: str, clocks: Setting | Clocks) -> float:
        return self.rows[(phase, _setting(clocks))][1]

    def settings(self, phase: str) -> list[Setting]:
        return [s for (p, s) in self.rows if p == phase]

    def energy_J(self, phase: str, clocks: Setting | Clocks, seconds: float) -> float:
        """The reward's energy term: table power at these clocks times the phase's time."""
        return self.power_W(phase, clocks) * seconds

    def pareto(self, phase: str, limit: int = 10) -> list[Setting]:
        """Settings not beaten in both time and energy of the reference workload, fastest first,
        thinned to `limit` spread evenly in log time (the fastest and the cheapest always kept)."""
        pts = sorted(((t, p * t, s) for (ph, s), (p, t) in self.rows.items() if ph == phase))
        front: list[tuple[float, float, Setting]] = []
        best = math.inf
        for t, e, s in pts:
            if e < best - 1e-12:
                front.append((t, e, s))
                best = e
        if len(front) > limit:
            idx = sorted({round(i * (len(front) - 1) / (limit - 1)) for i in range(limit)})
            front = [front[i] for i in idx]
        return [s for _, _, s in front]

    def check_profile(self, profile: Any, mode: str | None, where: str = "power table") -> None:
        m = profile.mode(mode).name
        if self.profile != profile.name or self.mode.lower() != m.lower():
            raise CloneError(f"{where}: measured on {self.profile} mode {self.mode}, not {profile.name} mode {m} "
                             f"(run clone profile-power --device sim:{profile.name} --mode {m})")

    # ------------------------------------------------------------------ files
    def to_csv(self) -> str:
        buf = io.StringIO()
        for k in ("profile", "mode", "date", "device", "workload"):
            buf.write(f"# {k}: {getattr(self, k)}\n")
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(COLUMNS)
        for (phase, s), (p, t) in sorted(self.rows.items()):
            w.writerow([phase, f"{s[0]:g}", f"{s[1]:g}", f"{s[2]:g}", f"{p:.6g}", f"{t:.6g}"])
        return buf.getvalue()

    def save(self, path: str | os.PathLike) -> Path:
        return write_text_atomic(path, self.to_csv())


def _setting(clocks: Setting | Clocks) -> Setting:
    if isinstance(clocks, Clocks):
        return (clocks.gpu_MHz, clocks.emc_MHz, clocks.cpu_MHz)
    return (float(clocks[0]), float(clocks[1]), float(clocks[2]))


def load_power_table(path: str | os.PathLike, profile: Any = None, mode: str | None = None) -> PowerTable:
    """Read and validate a table; with a profile, refuse one measured on another profile/mode and rows
    whose clocks the profile does not list."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CloneError(f"{p}: cannot read power table ({exc.__class__.__name__})") from None
    meta: dict[str, str] = {}
    body = []
    for line in text.splitlines():
        if line.startswith("#"):
            k, _, v = line[1:].partition(":")
            meta[k.strip()] = v.strip()
        elif line.strip():
            body.append(line)
    for k in ("profile", "mode", "date"):
        if not meta.get(k):
            raise CloneError(f"{p}: not a power table (missing '# {k}:' header line)")
    rows = list(csv.reader(body))
    if not rows or tuple(rows[0]) != COLUMNS:
        raise CloneError(f"{p}: power table columns {rows[0] if rows else []} (allowed: {','.join(COLUMNS)})")
    table = PowerTable(meta["profile"], meta["mode"], meta["date"], meta.get("device", "?"), meta.get("workload", "?"))
    for no, r in enumerate(rows[1:], 2):
        where = f"{p}: row {no - 1}"
        if len(r) != len(COLUMNS) or r[0] not in PHASES:
            raise CloneError(f"{where}: {r!r} is not phase(prefill|decode),gpu_MHz,emc_MHz,cpu_MHz,power_W,time_s")
        try:
            vals = [float(x) for x in r[1:]]
        except ValueError:
            raise CloneError(f"{where}: {r!r} has a value that is not a number") from None
        if not all(math.isfinite(v) and v > 0 for v in vals):
            raise CloneError(f"{where}: {r!r}: every number must be finite and > 0")
        table.rows[(r[0], tuple(vals[:3]))] = (vals[3], vals[4])  # type: ignore[index]
    for ph in PHASES:
        if not table.settings(ph):
            raise CloneError(f"{p}: no {ph} rows")
    if profile is not None:
        table.check_profile(profile, mode, str(p))
        m = profile.mode(mode).name
        for (_, s) in table.rows:
            for d, f in zip(DOMAINS, s):
                if not any(abs(f - x) < 1e-3 for x in profile.clock_choices(d, m)):
                    raise CloneError(f"{p}: {d}_MHz {f:g} is not a {profile.name} {m} clock")
    return table


def measure_power_table(board: Any, run_prefill: Callable[[], None], run_decode: Callable[[], None],
                        settings: Iterable[Setting], workload: str,
                        progress: Callable[[Iterable], Iterable] = lambda x: x, mode: str | None = None) -> PowerTable:
    """Measure each setting on a device backend: apply the clocks, run the phase's reference work inside
    begin_phase/end_phase, and record energy / time. Works for any DeviceBackend whose end_phase
    reports energy (the simulated board; a Jetson samples its power rails)."""
    profile = getattr(board, "profile", None)
    mode = mode or getattr(getattr(board, "mode", None), "name", None) or "?"
    table = PowerTable(getattr(profile, "name", board.name), mode,
                       datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), board.name, workload)
    for s in progress(list(settings)):
        board.set_clocks(Clocks(*s))
        for phase, run in (("prefill", run_prefill), ("decode", run_decode)):
            board.begin_phase(phase)
            run()
            acct = board.end_phase()
            if acct.time_s <= 0 or not acct.energy_J > 0:
                raise CloneError(f"{board.name}: no energy reading for {phase} at {s} (no power sensor?)")
            table.rows[(phase, s)] = (acct.energy_J / acct.time_s, acct.time_s)
    return table


def measure_simulated(board: Any, shape: Any, settings: Iterable[Setting],
                      prompt_tokens: int = REF_PROMPT_TOKENS, decode_tokens: int = REF_DECODE_TOKENS,
                      progress: Callable[[Iterable], Iterable] = lambda x: x) -> PowerTable:
    """The reference workload on the simulated board: one prefill of prompt_tokens, then decode_tokens
    decode passes over that context, no co-runner."""
    board.bind(shape)

    def pre() -> None:
        board.run_pass(prompt_tokens, 0)

    def dec() -> None:
        for k in range(decode_tokens):
            board.run_pass(1, prompt_tokens + k)

    name = getattr(shape.config, "name", "model")
    work = (f"{name} w{shape.weight_bits}: prefill {prompt_tokens} tokens; decode {decode_tokens} tokens "
            f"at kv {prompt_tokens}")
    return measure_power_table(board, pre, dec, settings, work, progress)
