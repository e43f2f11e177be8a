"""The clone-accel-28nm edge profile must describe the RTL's asic28 instance."""
from clone.profiles import load_profile
from hw.params import AccelParams
from hw.reference import vf_reset


def test_profile_matches_asic28_parameters():
    p = AccelParams.asic28()
    prof = load_profile("clone-accel-28nm")
    assert (prof.array["rows"], prof.array["cols"]) == (p.n, p.n)
    b = prof.buffers
    assert b["activation_KiB"] * 1024 == p.abuf_depth * p.n
    assert b["weight_KiB"] * 1024 == p.wbuf_depth * p.n * p.n
    assert b["output_KiB"] * 1024 == p.obuf_depth * p.n * 4
    assert b["adapter_envm_KiB"] * 1024 == p.envm_depth * p.n
    assert b["dvfs_levels"] == p.nl
    pts = [(op.freq_MHz, round(op.voltage_V, 2)) for op in prof.operating_points]
    assert pts == [(25 * f, round(v / 100, 2)) for v, f in vf_reset(p)]
