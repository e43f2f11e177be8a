"""Ratio search on synthetic objectives: Eq. 1, feasible sampling, resumable records, generative search."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from clone.errors import CloneError
from clone.search import (
    Budget,
    Evaluation,
    GenerativeConfig,
    RatioRecord,
    RatioSpace,
    RecordTable,
    clone_score,
    collect,
    explore_vectors,
    exploit_vectors,
    generate_candidates,
    ratio_key,
    score_frame,
    search,
)

L = 30
POS = np.linspace(0.0, 1.0, L)
# Like real LLMs: front and back layers are sensitive, the middle ones are not.
SENS = 0.3 + 12.0 * (np.abs(POS - 0.5) * 2) ** 3
TARGET = 0.2
MEAN_RATIO = TARGET / 0.85


def removed(ratios) -> float:
    """85% of the parameters sit in prunable layers of equal size."""
    return 0.85 * float(np.mean(ratios))


def synthetic_eval(ratios) -> dict:
    r = np.asarray(ratios, dtype=float)
    return {"ppl": 10.0 * math.exp(float(np.sum(SENS * r**2)) / 3), "ttft_s": 0.1, "tpot_s": 0.01, "energy_J": 1.0}


BASELINES = {
    "uniform": [MEAN_RATIO] * L,
    "exempt": [0.0] * 2 + [MEAN_RATIO * L / (L - 4)] * (L - 4) + [0.0] * 2,
}


def space() -> RatioSpace:
    return RatioSpace(L, removed, TARGET, 0.0, 0.6, 0.005)


# --- Eq. 1 -----------------------------------------------------------------------------------------

def test_score_within_budget_is_inverse_perplexity():
    assert clone_score(20.0, 0.5, 3.0, 1.0, 5.0) == pytest.approx(1 / 20)
    assert clone_score(20.0, 1.0, 5.0, 1.0, 5.0) == pytest.approx(1 / 20)  # exactly at budget


def test_score_over_budget_penalised_with_exponent_two():
    assert clone_score(20.0, 2.0, 3.0, 1.0, 5.0) == pytest.approx(1 / 20 * 0.5**2)
    assert clone_score(20.0, 0.5, 10.0, 1.0, 5.0) == pytest.approx(1 / 20 * 0.5**2)
    assert clone_score(20.0, 2.0, 10.0, 1.0, 5.0, alpha=1, beta=3) == pytest.approx(1 / 20 * 0.5 * 0.5**3)


def test_score_ttft_and_tpot_each_penalised_only_when_over():
    lat = {"ttft_s": 0.4, "tpot_s": 0.05}
    assert clone_score(10.0, lat, 1.0, {"ttft_s": 0.2, "tpot_s": 0.1}, None) == pytest.approx(0.1 * 0.25)
    assert clone_score(10.0, lat, 1.0, {"ttft_s": 0.2, "tpot_s": 0.025}, None) == pytest.approx(0.1 * 0.25 * 0.25)
    assert clone_score(10.0, lat, 1.0, {"ttft_s": None, "tpot_s": 0.025}, None) == pytest.approx(0.1 * 0.25)
    assert clone_score(10.0, (0.4, 0.05), 1.0, (0.2, 0.1), None) == pytest.approx(0.1 * 0.25)
    assert clone_score(math.inf, 0.1, 1.0, 1.0, 1.0) == 0.0


def test_score_frame_matches_scalar_scores():
    df = pd.DataFrame({"ppl": [10.0, 20.0, 15.0], "ttft_s": [0.1, 0.3, 0.2], "tpot_s": [0.01, 0.01, 0.04],
                       "energy_J": [1.0, 4.0, 2.0]})
    budget = Budget(ttft_s=0.2, tpot_s=0.02, energy_J=2.0)
    got = score_frame(df, budget)
    for i, row in df.iterrows():
        want = clone_score(row.ppl, {"ttft_s": row.ttft_s, "tpot_s": row.tpot_s}, row.energy_J,
                           budget.latency_s, budget.energy_J)
        assert got[i] == pytest.approx(want)
    assert got[0] == pytest.approx(0.1) and got[1] < got[2] < got[0]


def test_bad_budget_is_a_clone_error():
    with pytest.raises(CloneError, match="ttft_s"):
        Budget(ttft_s=-1.0)


# --- sampling --------------------------------------------------------------------------------------

def test_explore_vectors_meet_target_within_bounds_on_grid():
    sp = RatioSpace(L, removed, TARGET, 0.0, np.r_[[0.1] * 3, [0.6] * (L - 3)], 0.005)
    vecs = explore_vectors(sp, 40, seed=3)
    assert len(vecs) == 40 and len({ratio_key(v) for v in vecs}) == 40
    for v in vecs:
        assert abs(removed(v) - TARGET) <= 0.005
        assert np.all(v >= 0) and np.all(v <= sp.hi_v + 1e-12)
        assert np.allclose(v * 1000, np.round(v * 1000))
    assert np.std([np.std(v) for v in vecs]) > 0.01  # spiky and flat profiles both occur
    assert [ratio_key(v) for v in explore_vectors(sp, 5, seed=3)] == [ratio_key(v) for v in vecs[:5]]


def test_repair_scales_toward_target_and_keeps_shape():
    sp = space()
    raw = np.linspace(0.05, 0.5, L)
    fixed = sp.repair(raw)
    assert abs(removed(fixed) - TARGET) <= 0.005
    assert np.all(np.diff(fixed) >= -1e-9)  # order of layers kept
    assert sp.repair(np.zeros(L)) is not None  # all-zero shape falls back to the common shift
    with pytest.raises(CloneError, match="target"):
        RatioSpace(L, removed, 0.7, 0.0, 0.6)


def test_exploit_vectors_include_repaired_baselines_then_perturbations():
    out = exploit_vectors(space(), BASELINES, 10, seed=0)
    sources = [s for s, _ in out]
    assert sources[:2] == ["exploit:uniform", "exploit:exempt"]
    assert all(s.endswith("+noise") for s in sources[2:]) and len(out) == 10
    assert all(abs(removed(v) - TARGET) <= 0.005 for _, v in out)


# --- records, pool, resume -------------------------------------------------------------------------

class Interrupted(BaseException):
    """Stands for Ctrl-C / a killed job: not an evaluator error, so the collection stops."""


def test_records_resume_after_interruption_without_reevaluating(tmp_path):
    calls: list[str] = []
    fail_after = [7]

    def evaluate(ratios):
        if len(calls) == fail_after[0]:
            raise Interrupted
        calls.append(ratio_key(ratios))
        if len(calls) == 3:
            raise RuntimeError("CUDA out of memory")  # an evaluator error: recorded, collection goes on
        return synthetic_eval(ratios)

    ev = Evaluation(evaluate, space(), Budget(), progress=False)
    with pytest.raises(Interrupted):
        collect(ev, RecordTable.open(tmp_path, L), BASELINES, 12, 6, seed=1)
    on_disk = pd.read_csv(tmp_path / "records.csv")
    assert len(on_disk) == 7 and not list(tmp_path.glob(".records-*"))
    assert "CUDA out of memory" in on_disk["error"].fillna("").iloc[2]

    fail_after[0] = -1
    table = RecordTable.open(tmp_path, L)
    assert len(table) == 7
    collect(ev, table, BASELINES, 12, 6, seed=1)
    assert len(calls) == len(set(calls)) == 18  # each candidate evaluated exactly once over both runs
    assert len(RecordTable.open(tmp_path, L)) == 18
    rec = table.get(calls[0])
    assert rec.score == pytest.approx(1 / rec.ppl, rel=1e-8) and rec.params_removed_frac == pytest.approx(TARGET, abs=0.005)


def test_records_csv_round_trip_and_wrong_layer_count(tmp_path):
    table = RecordTable.open(tmp_path, 3)
    table.add(RatioRecord([0.1, 0.2004, 0.0], "exploit:uniform", ppl=12.0, score=1 / 12))
    back = RecordTable.open(tmp_path, 3).records[0]
    assert back.ratios == [0.1, 0.2, 0.0] and back.source == "exploit:uniform" and back.error == ""
    assert pd.read_csv(tmp_path / "records.csv")["ratios"][0] == "0.100;0.200;0.000"
    with pytest.raises(CloneError, match="3 ratios"):
        RecordTable.open(tmp_path, 4)


def test_thread_pool_for_unpicklable_evaluator(tmp_path):
    ev = Evaluation(lambda r: synthetic_eval(r), space(), Budget(), workers=2, progress=False)
    assert ev._kind() == "thread"
    table = RecordTable.open(tmp_path, L)
    done = collect(ev, table, BASELINES, 6, 2, seed=0)
    assert len(done) == 8 and all(r.ok for r in done)


# --- generative search -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic_search(tmp_path_factory):
    out = tmp_path_factory.mktemp("search")
    cfg = GenerativeConfig()
    return search(L, removed, synthetic_eval, BASELINES, TARGET, 100, 30, 8, out_dir=out, seed=0,
                  bounds=(0.0, 0.6), config=cfg, progress=False)


def test_encoder_decoder_reconstructs_training_vectors(synthetic_search):
    stats = synthetic_search.train_stats
    assert stats.recon_mae < 0.02  # mean |decoded - true| per layer, on the 0.001 grid
    assert stats.score_corr > 0.9


def test_generated_candidates_are_feasible_new_and_good(synthetic_search):
    res = synthetic_search
    df = res.table
    collected = df[~df.source.str.startswith("generated")]
    explore = df[df.source == "explore"]
    assert len(res.generated) == 8
    assert not set(r.key for r in res.generated) & set(collected.ratios)
    for r in res.generated:
        assert abs(r.params_removed_frac - TARGET) <= 0.005
    best_generated = max(r.score for r in res.generated)
    print(f"best explore {explore.score.max():.5f}, best collected {res.best_collected.score:.5f}, "
          f"best generated {best_generated:.5f}")
    # The model learned which layers are sensitive: every generated candidate beats the median
    # random vector and the best one beats 95% of them.
    assert min(r.score for r in res.generated) > explore.score.median()
    assert best_generated > explore.score.quantile(0.95)
    assert res.best.score == df.score.max()


def test_process_pool_for_picklable_evaluator(tmp_path):
    ev = Evaluation(synthetic_eval, space(), Budget(), workers=2, progress=False)
    assert ev._kind() == "process"
    done = collect(ev, RecordTable.open(tmp_path, L), BASELINES, 3, 1, seed=0)
    assert len(done) == 4 and all(r.ok for r in done), [r.error for r in done]


def test_rerun_of_finished_search_evaluates_nothing_and_generation_is_deterministic(tmp_path):
    n = 8
    calls: list[str] = []

    def evaluate(ratios):
        calls.append(ratio_key(ratios))
        r = np.asarray(ratios)
        return {"ppl": 10.0 * math.exp(float(np.sum(np.linspace(3, 1, n) * r**2))), "ttft_s": 0.1,
                "tpot_s": 0.01, "energy_J": 1.0}

    kwargs = dict(out_dir=tmp_path, seed=5, bounds=(0.0, 0.6), progress=False, rounds=2,
                  config=GenerativeConfig(epochs=15, top_k=5, beam=2))
    first = search(n, lambda r: float(np.mean(r)), evaluate, {"uniform": [0.2] * n}, 0.2, 12, 4, 3, **kwargs)
    n_calls = len(calls)
    assert 1 <= len(first.generated) <= 6 and n_calls == 16 + len(first.generated) == len(set(calls))
    second = search(n, lambda r: float(np.mean(r)), evaluate, {"uniform": [0.2] * n}, 0.2, 12, 4, 3, **kwargs)
    assert len(calls) == n_calls  # nothing evaluated again: same candidates regenerated, all found in the table
    assert [r.key for r in second.generated] == [r.key for r in first.generated]
    assert second.best.key == first.best.key


def test_exploitation_perturbs_mostly_around_the_best_baseline(tmp_path):
    from clone.search.collect import rank_weights, weighted_order

    assert weighted_order([1.0, 0.5, 0.25], 7).count(0) == 4 and weighted_order([0, 0], 3) == [0, 1, 0]
    ev = Evaluation(synthetic_eval, space(), Budget(), progress=False)
    table = RecordTable.open(tmp_path, L)
    collect(ev, table, BASELINES, 0, 14, seed=0)
    weights = rank_weights(table, exploit_vectors(space(), BASELINES, 2, 0))
    assert weights == {"exempt": 1.0, "uniform": 0.5}  # the exempt profile scores better here
    sources = [r.source for r in table.records]
    assert sources.count("exploit:exempt+noise") == 8 and sources.count("exploit:uniform+noise") == 4
