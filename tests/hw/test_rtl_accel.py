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
