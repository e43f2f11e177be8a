import pytest

import rtl_harness as rtl


@pytest.fixture(scope="session")
def accel_rtl():
    """Verilog of the small accelerator instance, built once per session for each simulator."""
    from hw.params import AccelParams
    from hw.top import CloneAccel
    vfile = rtl.verilog_for("clone_accel", lambda: CloneAccel(AccelParams.small()))
    return {sim: rtl.build(sim, vfile, "clone_accel") for sim in rtl.sims()}
