"""Sweeps: config checks before any point runs, grid expansion, resume after an interruption, failing
points, the local pool against Ray, and every shipped config in quick mode with its figures."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from clone.cli import main
from clone.errors import CloneError
from clone.sweep.config import expand_points, load_config
from clone.sweep.kinds import register_kind
from clone.sweep.kinds.base import Kind, Param, PointContext
from clone.sweep.plot import PLOT_KINDS, pareto_front
from clone.sweep.runner import read_table, run_sweep, table_columns

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "experiments" / "sweeps").glob("*.yaml"))
NANO = "jetson-orin-nano-8gb"


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------ a kind under test control
CALLS: list[int] = []
FAIL_ON: set[int] = set()
INTERRUPT_ON: set[int] = set()


def _toy_run(p: dict, ctx: PointContext) -> dict:
    CALLS.append(p["x"])
    if p["x"] in INTERRUPT_ON:
        raise KeyboardInterrupt
    if p["x"] in FAIL_ON:
        raise ValueError(f"x={p['x']} is cursed")
    return {"y": p["x"] ** 2 * p["scale"]}


register_kind(Kind("toy", {"x": Param(int), "scale": Param(float, 1.0)}, ("y",), _toy_run, plots=()))


@pytest.fixture
def toy(tmp_path):
    CALLS.clear()
    FAIL_ON.clear()
    INTERRUPT_ON.clear()
    return write(tmp_path, "kind: toy\ngrid: {x: {from: 1, to: 4}}\nfixed: {scale: 2}\n", "toy.yaml")


# ------------------------------------------------------------------------------ bad input
BAD = [
    ("kind: clocks\ngrdi: {profile: %s}\n" % NANO, "grdi: unknown key"),
    ("kind: clocks\ngrid: {profile: %s, gpu_mhz: [306]}\n" % NANO, "grid.gpu_mhz: unknown parameter"),
    ("kind: clocks\ngrid: {profile: %s, gpu_MHz: []}\n" % NANO, "grid.gpu_MHz: empty range"),
    ("kind: clocks\ngrid: {profile: %s, prompt_tokens: {from: 512, to: 128}}\n" % NANO,
     "grid.prompt_tokens: empty range"),
    ("kind: clocks\ngrid: {profile: [%s, jetson-orin-nano-4gb]}\n" % NANO,
     "grid.profile: 'jetson-orin-nano-4gb' is not a board profile"),
    ("kind: clocks\ngrid: {profile: %s, gpu_MHz: [306, 700]}\n" % NANO, "grid.gpu_MHz: 700 is not a GPU clock"),
    ("kind: clocks\ngrid: {profile: %s}\nfixed: {profile: %s}\n" % (NANO, NANO), "grid.profile: also given"),
    ("kind: clocks\ngrid: {profile: %s}\nquick: {grid: {profile: %s}, fixd: {}}\n" % (NANO, NANO),
     "quick.fixd: unknown key"),
    ("kind: clocks\ngrid: {gpu_MHz: 306}\n", "profile: required"),
    ("kind: pruning\ngrid: {method: uniform, ratio: 0.2, split: tset}\n", "grid.split: 'tset' is not a split"),
    ("kind: walrus\ngrid: {x: 1}\n", "kind: 'walrus' is not a sweep kind"),
]


@pytest.mark.parametrize("text, expected", BAD, ids=[e.split(":")[0] for _, e in BAD])
def test_bad_config_is_rejected_before_any_point_runs(tmp_path, text, expected):
    path = write(tmp_path, text)
    out = tmp_path / "out"
    with pytest.raises(CloneError) as err:
        run_sweep(path, out, workers=1, progress=False)
    assert str(err.value).startswith(f"{path}: ")
    assert expected in str(err.value)
    assert not out.exists()  # nothing ran, no table written


def test_cli_reports_bad_config_in_one_line(tmp_path, capsys):
    path = write(tmp_path, "kind: clocks\ngrid: {profile: %s, emc_MHz: 1000}\n" % NANO)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "grid.emc_MHz: 1000 is not a EMC clock" in err and "3199" in err


# ------------------------------------------------------------------------------ expansion
def test_grid_expansion_resolves_symbols_per_profile_and_dedupes_unions(tmp_path):
    from clone.profiles import load_profile

    path = write(tmp_path, f"""kind: clocks
grid:
  - {{profile: [{NANO}, jetson-agx-orin-64gb], gpu_MHz: all, emc_MHz: [min, max]}}
  - {{profile: {NANO}, gpu_MHz: max, emc_MHz: [max]}}
quick:
  grid: {{profile: {NANO}, gpu_MHz: [306, max]}}
""")
    cfg = load_config(path)
    pts = expand_points(cfg)
    by = {n: [p for p in pts if p.params["profile"] == n] for n in (NANO, "jetson-agx-orin-64gb")}
    for name, rows in by.items():
        prof = load_profile(name)
        mode = prof.mode().name
        gpus = prof.clock_choices("gpu", mode)
        emcs = prof.clock_choices("emc", mode)
        assert [r.params["gpu_MHz"] for r in rows] == [g for g in gpus for _ in range(2)]
        assert {r.params["emc_MHz"] for r in rows} == {emcs[0], emcs[-1]}
        assert all(r.params["mode"] == mode and r.params["cpu_MHz"] == prof.clock_choices("cpu", mode)[-1]
                   for r in rows)
    assert len(pts) == 2 * (8 + 11)  # the second grid's point is already in the first
    assert len({p.id for p in pts}) == len(pts)
    assert [p.id for p in expand_points(load_config(path))] == [p.id for p in pts]  # stable ids
    quick = expand_points(cfg, quick=True)
    assert [p.params["gpu_MHz"] for p in quick] == [306.0, 918.0]
    assert quick[1].id in {p.id for p in pts}  # same parameters, same point


# ------------------------------------------------------------------------------ runner
def test_failing_point_records_its_error_and_the_sweep_goes_on(tmp_path, toy):
    FAIL_ON.add(2)
    res = run_sweep(toy, tmp_path / "out", workers=1, progress=False)
    df = read_table(res.path)
    assert list(df["x"]) == [1, 2, 3, 4] and CALLS == [1, 2, 3, 4]
    assert list(df.columns) == ["point_id", "sweep", "kind", "x", "scale", "y", "error", "elapsed_s"]
    bad = df[df["x"] == 2].iloc[0]
    assert bad["error"] == "ValueError: x=2 is cursed" and math.isnan(bad["y"])
    assert list(df[df["x"] != 2]["y"]) == [2.0, 18.0, 32.0]
    assert res.n_errors == 1
    # a rerun skips every finished point, failed ones included; --retry-errors runs only those again
    CALLS.clear()
    FAIL_ON.clear()
    assert run_sweep(toy, tmp_path / "out", workers=1, progress=False).n_run == 0 and CALLS == []
    res = run_sweep(toy, tmp_path / "out", workers=1, progress=False, retry_errors=True)
    assert CALLS == [2] and res.n_errors == 0 and list(res.table["y"]) == [2.0, 8.0, 18.0, 32.0]


def test_interrupted_sweep_keeps_finished_points_and_resumes(tmp_path, toy):
    INTERRUPT_ON.add(3)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(toy, tmp_path / "out", workers=1, progress=False)
    df = read_table(tmp_path / "out" / "toy.csv")
    assert list(df["x"]) == [1, 2] and not list((tmp_path / "out").glob(".*.tmp"))
    df.loc[df["x"] == 1, "y"] = -1.0  # a finished point is never recomputed
    df.to_csv(tmp_path / "out" / "toy.csv", index=False)
    CALLS.clear()
    INTERRUPT_ON.clear()
    res = run_sweep(toy, tmp_path / "out", workers=1, progress=False)
    assert CALLS == [3, 4] and (res.n_skipped, res.n_run) == (2, 2)
    assert list(res.table["y"]) == [-1.0, 8.0, 18.0, 32.0]
    # a changed parameter is a different point; rows of points no longer in the config are dropped
    toy.write_text(toy.read_text().replace("scale: 2", "scale: 3"))
    res = run_sweep(toy, tmp_path / "out", workers=1, progress=False)
    assert res.n_run == 4 and res.n_dropped == 4 and list(res.table["y"]) == [3.0, 12.0, 27.0, 48.0]


def test_ray_executor_gives_the_same_table_as_the_local_pool(tmp_path):
    path = write(tmp_path, """kind: accel
grid:
  - {point: [l0, l15], weight_bits: [8, 4]}
  - {profile: jetson-orin-nano-8gb}
fixed: {prompt_tokens: 16, output_tokens: 4}
""", "small.yaml")
    local = run_sweep(path, tmp_path / "local", executor="local", workers=2, progress=False)
    ray = run_sweep(path, tmp_path / "ray", executor="ray", workers=2, progress=False)
    a, b = (read_table(r.path).drop(columns="elapsed_s") for r in (local, ray))
    assert len(a) == 5 and (a["error"] == "").all()
    pd.testing.assert_frame_equal(a, b)


# ------------------------------------------------------------------------------ shipped configs
def test_pareto_front_keeps_only_undominated_points():
    x = [1.0, 2.0, 3.0, 1.5, 4.0, 2.0]
    y = [5.0, 3.0, 1.0, 6.0, 1.0, 2.5]
    assert pareto_front(x, y) == [0, 5, 2]


def _checks(kind: str, df: pd.DataFrame) -> None:
    """Physics and bookkeeping each kind's quick table must show (each would catch a real bug)."""
    if kind == "clocks":
        top_gpu = df[df["gpu_MHz"] == df["gpu_MHz"].max()].sort_values("emc_MHz")
        assert top_gpu["tpot_s"].is_monotonic_decreasing and top_gpu["tpot_s"].nunique() == len(top_gpu)
        top_emc = df[df["emc_MHz"] == df["emc_MHz"].max()].sort_values("gpu_MHz")
        assert top_emc["ttft_s"].iloc[0] > top_emc["ttft_s"].iloc[-1]
    elif kind == "pruning":
        dense = df[df["method"] == "dense"].iloc[0]
        pruned = df[df["method"] != "dense"]
        assert (pruned["ppl"] > dense["ppl"]).all() and (pruned["tpot_s"] < dense["tpot_s"]).all()
        assert ((pruned["removed_fraction"] - pruned["ratio"]).abs() < 0.03).all()
        assert pruned.set_index("method").loc["shortgpt", "layers_removed"] >= 1
        assert pruned.set_index("method").loc["clone", "search_records"] > 0
    elif kind == "quant":
        mem = df.set_index(["bits", "group_size"])["deployed_MB"]
        assert mem[(16, 0)] > mem[(8, 128)] > mem[(4, 64)] > mem[(4, 0)]
        bpw = df.set_index(["bits", "group_size"])["projection_bits_per_weight"]
        assert bpw[(4, 64)] == pytest.approx(4 + 24 / 64)  # fp16 scale + uint8 zero per group and bpw[(16, 0)] == 16
        ppl = df.set_index(["bits", "group_size"])["ppl"]
        assert abs(ppl[(8, 128)] / ppl[(16, 0)] - 1) < 0.05 < ppl[(4, 0)] / ppl[(16, 0)] - 1
    elif kind == "accel":
        acc = df[df["profile"] == "clone-accel-28nm"]
        by_point = acc[acc["array"] == "16x16"].set_index("point")
        assert by_point.loc["l0", "tok_compute_mJ"] < by_point.loc["l15", "tok_compute_mJ"]  # V^2
        area = acc[acc["point"] == "l8"].set_index("array")["area_mm2"]
        assert area["16x16"] == pytest.approx(0.804, abs=0.001) and area["8x8"] < area["16x16"]
        assert df[df["profile"] != "clone-accel-28nm"]["area_mm2"].isna().all()
    elif kind == "pareto":
        pol = df[df["policy"] != "static"].set_index("policy")
        st = df[df["policy"] == "static"]
        top = st[(st["gpu_MHz"] == st["gpu_MHz"].max()) & (st["emc_MHz"] == st["emc_MHz"].max())]
        assert pol.loc["max", "energy_J"] == pytest.approx(float(top["energy_J"].iloc[0]))
        assert pol.loc["oracle", "energy_J"] < pol.loc["max", "energy_J"]
        assert set(pol.index) == {"max", "governor", "best-fixed", "clone", "oracle"}


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_shipped_config_runs_quick_with_its_figures(tmp_path, config):
    cfg = load_config(config)
    assert cfg.name == config.stem  # `make plots` finds the table by the file name
    out, figs = tmp_path / "tables", tmp_path / "figures"
    assert main(["sweep", str(config), "--quick", "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    table = out / f"{cfg.name}.quick.csv"
    df = read_table(table)
    expected = table_columns(cfg)
    assert [c for c in df.columns if c in expected] == expected
    assert len(df) == len(expand_points(cfg, quick=True))
    assert (df["error"] == "").all(), df.loc[df["error"] != "", "error"].tolist()
    _checks(cfg.kind.name, df)
    assert main(["plot", str(table), "--out", str(figs)]) == 0
    for kind in cfg.plots:
        assert kind in PLOT_KINDS
        stem = kind if kind.startswith(cfg.name) else f"{cfg.name}-{kind}"
        png, svg = figs / f"{stem}.png", figs / f"{stem}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < png.stat().st_size < 200_000
        assert b"<svg" in svg.read_bytes()[:2000]
