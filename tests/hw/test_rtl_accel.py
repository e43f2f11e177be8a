"""cocotb benches of the accelerator RTL (tests/hw/benches), one per block plus end to end, on
every simulator listed in CLONE_RTL_SIMS (default icarus)."""
import pytest

import rtl_harness as rtl

BENCHES = ["bench_mac", "bench_lpu", "bench_router", "bench_sfu", "bench_axi", "bench_e2e"]


@pytest.mark.slow
@pytest.mark.parametrize("sim", rtl.sims())
@pytest.mark.parametrize("bench", BENCHES)
def test_bench(bench, sim, accel_rtl, tmp_path):
    rtl.run_bench(sim, accel_rtl[sim], "clone_accel", bench, tmp_path / bench)


@pytest.mark.parametrize("sim", rtl.sims())
def test_mac_array_block(sim, tmp_path):
    """The MAC array datapath on its own Verilog."""
    from hw.mac_array import MacArray
    from hw.params import AccelParams
    vfile = rtl.verilog_for("mac_array", lambda: MacArray(AccelParams.small().n))
    bdir = rtl.build(sim, vfile, "mac_array")
    rtl.run_bench(sim, bdir, "mac_array", "bench_mac_array", tmp_path / "mac_array")


@pytest.mark.slow
@pytest.mark.parametrize("sim", rtl.sims())
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_commands(seed, sim, accel_rtl, tmp_path):
    """Random command streams with different seeds against the reference model."""
    rtl.run_bench(sim, accel_rtl[sim], "clone_accel", "bench_random", tmp_path / "random", seed=seed)


@pytest.mark.parametrize("sim", rtl.sims())
@pytest.mark.parametrize("block", ["router", "lora_engine", "gemv_engine", "sfu"])
def test_block_bench(block, sim, tmp_path):
    """Router, LoRA engine, GEMV engine and SFU on their own Verilog (memory models for buffers)."""
    from hw.lpu import LoraEngine
    from hw.mac_array import GemvEngine
    from hw.params import AccelParams
    from hw.router import Router
    from hw.sfu import Sfu
    make = {"router": Router, "lora_engine": LoraEngine, "gemv_engine": GemvEngine, "sfu": Sfu}[block]
    vfile = rtl.verilog_for(block, lambda: make(AccelParams.small()))
    bdir = rtl.build(sim, vfile, block)
    rtl.run_bench(sim, bdir, block, "bench_blocks", tmp_path / block, testcase=f"{block}_block")
