"""Request traces: round trip, malformed lines named by number, realistic generator."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from clone.errors import CloneError
from clone.profiles import load_profile
from clone.runtime.traces import generate_trace, load_trace, save_trace

SHIPPED = Path(__file__).resolve().parents[1] / "experiments" / "traces"


def test_shipped_traces_load():
    p = load_profile("jetson-orin-nano-8gb")
    files = sorted(SHIPPED.glob("*.jsonl"))
    assert len(files) >= 3
    for f in files:
        reqs = load_trace(f, p)
        assert 8 <= len(reqs) <= 100
        assert all(r.ttft_ms and r.tpot_ms for r in reqs)


@pytest.mark.parametrize("line,msg", [
    ('{"prompt": "hi", "max_new_tokens": 4', "not valid JSON"),
    ('{"max_new_tokens": 4}', "missing prompt"),
    ('{"prompt": "hi", "max_new_tokens": 0}', "max_new_tokens 0"),
    ('{"prompt": "hi", "max_new_tokens": 4, "ttft_ms": -1}', "ttft_ms"),
    ('{"prompt": "hi", "max_new_tokens": 4, "colour": 1}', "unknown keys"),
    ('{"prompt": "hi", "max_new_tokens": 4, "arrival_s": 0.5}', "before the previous"),
    ('{"prompt": "hi", "max_new_tokens": 4, "app_class": "gaming"}', "gaming"),
])
def test_malformed_line_names_its_number(tmp_path, line, msg):
    f = tmp_path / "t.jsonl"
    f.write_text('{"prompt": "ok", "max_new_tokens": 4, "arrival_s": 1.0}\n\n' + line + "\n")
    with pytest.raises(CloneError, match=rf"t.jsonl:3: .*{msg}"):
        load_trace(f, load_profile("jetson-orin-nano-8gb"))


def test_generator_is_realistic_and_round_trips(tmp_path):
    p = load_profile("jetson-orin-nano-8gb")
    reqs = generate_trace(300, seed=5, rate_per_s=2.0, profile=p, use_corpora=False)
    assert reqs == generate_trace(300, seed=5, rate_per_s=2.0, profile=p, use_corpora=False)
    gaps = [b.arrival_s - a.arrival_s for a, b in zip(reqs, reqs[1:])]
    assert statistics.fmean(gaps) == pytest.approx(0.5, rel=0.2)
    words = sorted(len(r.prompt.split()) for r in reqs)
    assert words[-1] > 3 * words[len(words) // 2]  # long tail
    assert {r.app_class for r in reqs} == set(p.budgets)
    assert all(r.expected_output_tokens <= r.max_new_tokens for r in reqs)
    path = save_trace(reqs, tmp_path / "g.jsonl")
    assert load_trace(path, p) == reqs
