"""DVFS (issue 5): power tables, length predictor, controller, reference policies, CLI bad input."""

from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pytest

from clone.cli import main
from clone.dvfs.controller import ControllerPolicy, load_controller
from clone.dvfs.episode import FastBoard, feasible_flags, run_request, run_trace, summarize
from clone.dvfs.length import LengthPredictor, errors, evaluate
from clone.dvfs.powertable import grid, load_power_table, measure_simulated
from clone.dvfs.reference import OraclePolicy
from clone.dvfs.registry import make_policy
from clone.dvfs.requests import estimate_prompt_tokens, generate_dvfs_trace
from clone.dvfs.shape import resolve_shape
from clone.dvfs.train import TrainConfig, train_controller
from clone.errors import CloneError
from clone.profiles import load_board
from clone.runtime.policies import MaxPolicy, PolicyState
from clone.runtime.simboard import SimulatedBoard
from clone.runtime.traces import TraceRequest

NANO, NX = "jetson-orin-nano-8gb", "jetson-orin-nx-16gb"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def nano():
    return load_board(NANO)


@pytest.fixture(scope="module")
def shape():
    return resolve_shape()


@pytest.fixture(scope="module")
def table(nano, shape):
    return measure_simulated(SimulatedBoard(nano), shape, grid(nano, cpu_steps=3))


@pytest.fixture(scope="module")
def trained(nano, shape, table):
    reqs = generate_dvfs_trace(200, seed=21, profile=nano, use_corpora=False)
    pred = LengthPredictor.fit(reqs)
    board = FastBoard(nano, shape, None, "websearch", seed=3, power_table=table)
    spec, report = train_controller(nano, None, board, table, reqs, pred,
                                    TrainConfig(iterations=40, batch=16, seed=0))
    return spec, report


# ------------------------------------------------------------------ power tables
def test_power_table_round_trip_and_shape(nano, table, tmp_path):
    path = table.save(tmp_path / "p.csv")
    back = load_power_table(path, nano)
    assert back.rows.keys() == table.rows.keys()
    for k, (p, t) in table.rows.items():
        assert back.rows[k][0] == pytest.approx(p, rel=1e-5) and back.rows[k][1] == pytest.approx(t, rel=1e-5)
    assert back.profile == NANO and back.mode == nano.mode().name and back.date
    top = tuple(nano.clock_choices(d)[-1] for d in ("gpu", "emc", "cpu"))
    low = (nano.clock_choices("gpu")[0], nano.clock_choices("emc")[-1], nano.clock_choices("cpu")[0])
    # Max clocks draw more power than min GPU / min CPU in both phases; decode is memory-bound, so
    # dropping the GPU clock barely lengthens it while a lower EMC clock does.
    for ph in ("prefill", "decode"):
        assert table.power_W(ph, top) > table.power_W(ph, low)
    assert table.time_s("decode", low) < 1.05 * table.time_s("decode", top)
    slow_emc = (top[0], nano.clock_choices("emc")[0], top[2])
    assert table.time_s("decode", slow_emc) > 3 * table.time_s("decode", top)


def test_power_table_bad_files(nano, table, tmp_path):
    path = table.save(tmp_path / "p.csv")
    with pytest.raises(CloneError, match="measured on jetson-orin-nano-8gb mode 25W, not jetson-orin-nx-16gb"):
        load_power_table(path, load_board(NX))
    with pytest.raises(CloneError, match="cannot read power table"):
        load_power_table(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("hello,world\n1,2\n")
    with pytest.raises(CloneError, match="not a power table"):
        load_power_table(tmp_path / "bad.csv")
    text = path.read_text().replace("decode,306,", "decode,307,", 1)
    (tmp_path / "clk.csv").write_text(text)
    with pytest.raises(CloneError, match="gpu_MHz 307 is not a"):
        load_power_table(tmp_path / "clk.csv", nano)
    lines = path.read_text().splitlines()
    (tmp_path / "nan.csv").write_text("\n".join(lines[:-1] + [lines[-1].rsplit(",", 1)[0] + ",abc"]) + "\n")
    with pytest.raises(CloneError, match="not a number"):
        load_power_table(tmp_path / "nan.csv")


# ------------------------------------------------------------------ length predictor
def test_predictor_beats_constant_on_heldout(tmp_path):
    train = generate_dvfs_trace(400, seed=1, use_corpora=False)
    test = generate_dvfs_trace(200, seed=2, use_corpora=False)
    pred = LengthPredictor.fit(train)
    got = evaluate(pred, test)
    med = int(np.median([r.expected_output_tokens for r in train]))
    const = errors([med] * len(test), [r.expected_output_tokens for r in test])
    assert got["mae_tokens"] < 0.7 * const["mae_tokens"]
    assert got["within_20pct"] > const["within_20pct"] + 0.15
    # Cues move the prediction the right way.
    short = pred.predict("Answer briefly: what is this", 10, "chatbot")
    long = pred.predict("Explain in detail, step by step: what is this", 10, "chatbot")
    listed = pred.predict("List eight points about this: x", 10, "chatbot")
    assert short < long and listed > 2 * pred.predict("List two points about this: x", 10, "chatbot")
    back = LengthPredictor.load(pred.save(tmp_path / "lp.json"))
    assert back.predict("Summarize: a b c", 50, "summarization") == pred.predict("Summarize: a b c", 50, "summarization")
    (tmp_path / "bad.json").write_text(json.dumps({"weights": [1, 2]}))
    with pytest.raises(CloneError, match="not a length predictor"):
        LengthPredictor.load(tmp_path / "bad.json")


# ------------------------------------------------------------------ simulator fidelity
def test_fast_board_matches_simulated_board(nano, shape):
    req = TraceRequest("word " * 120, 40, "chatbot", 1000.0, 200.0, 0.0, 30, "r0")
    P = estimate_prompt_tokens(req.prompt)
    fast = FastBoard(nano, shape, None, "none")
    o = run_request(fast, _bound(MaxPolicy(), fast), req, 0.0)
    sim = SimulatedBoard(nano)
    sim.bind(shape)
    ttft = sim.run_pass(P, 0)
    dec = sum(sim.run_pass(1, P + k) for k in range(29))
    assert o.ttft_s == pytest.approx(ttft, rel=1e-3)
    assert o.tpot_s == pytest.approx(dec / 29, rel=5e-3)
    assert o.energy_J == pytest.approx(sim.counters.energy_J, rel=5e-3)


def _bound(policy, board):
    policy.bind(board)
    return policy


# ------------------------------------------------------------------ controller
def test_controller_small_fast_and_improved_by_training(trained, nano, shape, table, tmp_path):
    spec, report = trained
    assert spec.mlp.n_params() < 1000
    assert report["reward_after"] > report["reward_before"]  # greedy reward on fixed validation episodes
    reqs = generate_dvfs_trace(20, seed=5, profile=nano, use_corpora=False)
    pol = ControllerPolicy(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outs = run_trace(FastBoard(nano, shape, None, "websearch", seed=1, power_table=table), pol, reqs)
    print(f"\ncontroller: {spec.mlp.n_params()} parameters, decision median "
          f"{1e6 * float(np.median(pol.decision_s)):.1f} us over {len(pol.decision_s)} decisions")
    assert len(pol.decision_s) >= len(reqs) * 2
    # Saved and loaded, it decides the same; a decision from deploy's plain PolicyState (no prompt text)
    # works too.
    spec.save(tmp_path / "m" / "dvfs")
    back = load_controller(tmp_path / "m", nano)
    state = PolicyState("request_start", 0.0, pol.actions[0], "prefill", 100, 64, ttft_target_ms=1000.0,
                        tpot_target_ms=200.0, co_runner_load=0.3, app_class="chatbot")
    assert ControllerPolicy(back).decide(state) == ControllerPolicy(spec).decide(state)


def test_controller_unmeetable_targets_pick_fastest(trained, nano, shape, table):
    spec, _ = trained
    pol = ControllerPolicy(spec)
    board = FastBoard(nano, shape, None, "none", power_table=table)
    pol.bind(board)
    board.clocks = pol.actions[-1]
    req = TraceRequest("word " * 300, 20, "chatbot", 1.0, 0.5, 0.0, 10, "r0")  # 1 ms TTFT, 0.5 ms TPOT
    with pytest.warns(UserWarning, match="cannot be met"):
        o = run_request(board, pol, req, 0.0)
    assert not o.met and pol.infeasible >= 2
    assert board.clocks == pol.actions[pol.fastest]
    assert spec.actions[pol.fastest] == tuple(nano.clock_choices(d)[-1] for d in ("gpu", "emc", "cpu"))


def test_controller_file_errors(trained, nano, tmp_path):
    with pytest.raises(CloneError, match="no DVFS controller"):
        load_controller(tmp_path / "nothing")
    d = tmp_path / "m" / "dvfs"
    d.mkdir(parents=True)
    (d / "controller.json").write_text("{not json")
    with pytest.raises(CloneError, match="corrupt DVFS controller"):
        load_controller(tmp_path / "m")
    spec, _ = trained
    spec.save(d)
    raw = json.loads((d / "controller.json").read_text())
    raw["mlp"]["W2"] = raw["mlp"]["W2"][:-1]
    (d / "controller.json").write_text(json.dumps(raw))
    with pytest.raises(CloneError, match="corrupt DVFS controller"):
        load_controller(d)
    spec.save(d)
    with pytest.raises(CloneError, match="trained for jetson-orin-nano-8gb mode 25W"):
        load_controller(d, load_board(NX))
    with pytest.raises(CloneError, match="no DVFS controller"):
        make_policy("clone", tmp_path / "elsewhere")
    with pytest.raises(CloneError, match="DVFS policies: clone"):
        make_policy("bogus")


# ------------------------------------------------------------------ oracle
def test_oracle_meets_what_max_meets_and_never_costs_more(nano, shape, table):
    reqs = generate_dvfs_trace(12, seed=9, profile=nano, use_corpora=False)
    reqs.append(TraceRequest("word " * 50, 8, "chatbot", 1.0, 1.0, 200.0, 6, "impossible"))
    cmp = []
    for r in reqs:  # the same start time, clocks and (constant) co-runner for both
        outs = []
        for pol in (MaxPolicy(), OraclePolicy(grid(nano, cpu_steps=3))):
            b = FastBoard(nano, shape, None, "constant:0.6", power_table=table)
            pol.bind(b)
            outs.append(run_request(b, pol, r, r.arrival_s))
        cmp.append(outs)
    for mx, orc in cmp:
        if mx.met:
            assert orc.met
        assert orc.energy_J <= mx.energy_J * (1 + 1e-9)
    assert not cmp[-1][1].met  # unmeetable: reported as a miss, no crash
    assert any(orc.energy_J < 0.8 * mx.energy_J for mx, orc in cmp)
    # With the bursty co-runner over a whole trace too.
    fresh = lambda: FastBoard(nano, shape, None, "websearch", seed=2, power_table=table)  # noqa: E731
    mx = run_trace(fresh(), MaxPolicy(), reqs[:-1])
    orc = run_trace(fresh(), OraclePolicy(grid(nano, cpu_steps=3)), reqs[:-1])
    assert summarize("o", orc).energy_J < summarize("m", mx).energy_J
    flags = feasible_flags(fresh(), reqs[:-1], orc)
    assert sum(o.met for o in orc) >= sum(flags) - 1


# ------------------------------------------------------------------ CLI
def test_cli_bad_input(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "train-dvfs", "--profile", NANO, "--iterations", "0", "--out", str(tmp_path))
    assert rc == 2 and err.count("\n") == 1 and "--iterations 0" in err
    rc, out, err = run_cli(capsys, "train-dvfs", "--profile", "no-such-board", "--out", str(tmp_path))
    assert rc == 2 and err.count("\n") == 1
    rc, out, err = run_cli(capsys, "train-dvfs", "--profile", NANO, "--trace", str(tmp_path / "none.jsonl"),
                           "--out", str(tmp_path))
    assert rc == 2 and err.count("\n") == 1 and "none.jsonl" in err
    rc, out, err = run_cli(capsys, "profile-power", "--device", "gpu0")
    assert rc == 2 and err.count("\n") == 1 and "unknown device" in err
    table = tmp_path / "nx.csv"
    rc, out, err = run_cli(capsys, "profile-power", "--device", f"sim:{NX}", "--cpu-steps", "2", "--out", str(table))
    assert rc == 0 and table.exists()
    rc, out, err = run_cli(capsys, "train-dvfs", "--profile", NANO, "--power-table", str(table), "--out", str(tmp_path))
    assert rc == 2 and "measured on jetson-orin-nx-16gb" in err and err.strip().count("\n") == 0
    (tmp_path / "m").mkdir()
    rc, out, err = run_cli(capsys, "deploy", str(tmp_path / "m"), "--device", f"sim:{NANO}", "--policy", "clone",
                           "--prompt", "hi")
    assert rc == 2 and err.strip().count("\n") == 0


def test_train_dvfs_cli_writes_model_dir(capsys, tmp_path):
    rc, out, err = run_cli(capsys, "train-dvfs", "--profile", NANO, "--iterations", "3", "--out", str(tmp_path / "m"))
    assert rc == 0, err
    d = tmp_path / "m" / "dvfs"
    for name in ("controller.json", "length_predictor.json", "power_table.csv", "best_fixed.json", "train_report.json"):
        assert (d / name).exists()
    spec = load_controller(tmp_path / "m", load_board(NANO))
    assert spec.predictor is not None and spec.mlp.n_params() < 1000
    assert make_policy("best-fixed", tmp_path / "m").name == "best-fixed"
    assert make_policy("clone", tmp_path / "m").name == "clone"


def test_policies_drive_a_real_deployment(smollm2, tmp_path, capsys):
    """The controller and the oracle through clone.runtime.deploy.Deployment with the real SmolLM2 on the
    simulated board (the path `clone deploy --policy clone|oracle` takes)."""
    from clone.costmodel import CostShape
    from clone.model.checkpoint import save_checkpoint
    from clone.runtime.backends import TorchBackend
    from clone.runtime.deploy import Deployment

    model_dir = save_checkpoint(smollm2.model, smollm2.tokenizer, tmp_path / "smollm2")
    assert main(["train-dvfs", "--profile", NANO, "--iterations", "2", "--out", str(model_dir)]) == 0
    capsys.readouterr()
    shape = CostShape(smollm2.model.config)
    reqs = [TraceRequest("Answer briefly: the capital of France is", 5, "chatbot", 1000.0, 200.0, 0.0, 4, "a"),
            TraceRequest("List three points about this: once upon a time", 6, "chatbot", 300.0, 50.0, 0.2, 6, "b")]
    for name in ("clone", "oracle", "best-fixed"):
        board = SimulatedBoard(NANO, interference="websearch", seed=1)
        pol = make_policy(name, model_dir)
        with board, Deployment(TorchBackend(smollm2.model, max_len=64), smollm2.tokenizer, board, pol, shape) as dep:
            recs = [dep.serve(r) for r in reqs]
        assert all(r.met for r in recs), name
        assert all(r.energy_J > 0 for r in recs)


def test_power_table_on_a_fake_jetson(tmp_path):
    """The real-board path: the same measurement through JetsonBackend on a fake sysfs tree, whose power
    rails read a fixed 9 W."""
    from clone.dvfs.powertable import measure_power_table
    from clone.runtime.jetson.backend import JetsonBackend
    from clone.runtime.jetson.faketree import build_fake_board

    fake = build_fake_board(NANO, 6, tmp_path / "root")
    fake.set_power(9.0)
    board = JetsonBackend(None, fake.root, handle_signals=False, sample_interval_s=0.01)
    work = lambda: time.sleep(0.06)  # noqa: E731
    settings = [(306.0, 3199.0, 115.2), (918.0, 3199.0, 1344.0)]
    with board:
        table = measure_power_table(board, work, work, settings, "sleep", mode="25W")
    assert table.profile == NANO and len(table.rows) == 4
    for (p, t) in table.rows.values():
        assert p == pytest.approx(9.0, rel=0.05) and t >= 0.05
    table.save(tmp_path / "j.csv")
    assert load_power_table(tmp_path / "j.csv", load_board(NANO), "25W").rows.keys() == table.rows.keys()
