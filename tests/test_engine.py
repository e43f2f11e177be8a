"""Engine: both backends give generate()'s greedy tokens; hook order and counts; deadline flags."""

import torch

from clone.export.onnx import export_onnx
from clone.runtime.backends import OrtBackend, TorchBackend
from clone.runtime.engine import Engine, Hooks, Request, deadline_flags
from tests.test_export import tiny


def reference_greedy(m, ids, n):
    cache = m.new_cache(1, len(ids) + n)
    out, logits = [], m(torch.tensor([ids]), cache=cache, last_only=True)
    for _ in range(n):
        out.append(int(logits[0, -1].argmax()))
        logits = m(torch.tensor([[out[-1]]]), cache=cache)
    return out


def test_backends_match_reference_and_hooks(tmp_path):
    m = tiny()
    ids = [3, 5, 7, 11, 13]
    want = reference_greedy(m, ids, 6)
    events = []
    hooks = Hooks(on_prefill_start=lambda r, n: events.append("ps"), on_prefill_end=lambda r, t: events.append("pe"),
                  on_token=lambda i, t, s: events.append("t"), on_layer=lambda i, ph: events.append(ph[0]))
    res = Engine(TorchBackend(m), hooks=hooks).run(Request(prompt_ids=ids, max_new_tokens=6, ttft_target_ms=1e6))
    assert res.tokens == want and res.ttft_met is True and res.tpot_met is None
    L = m.config.n_layers
    assert events == ["ps"] + ["p"] * L + ["pe", "t"] + (["d"] * L + ["t"]) * 5
    path = export_onnx(m, tmp_path / "m.onnx", last_logits_only=True).path
    assert Engine(OrtBackend(path)).run(Request(prompt_ids=ids, max_new_tokens=6)).tokens == want


def test_deadline_flags():
    assert deadline_flags(0.1, 0.02, 100, 20) == (True, True)
    assert deadline_flags(0.1001, 0.0201, 100, 20) == (False, False)
    assert deadline_flags(0.1, 0.02, None, None) == (None, None)
