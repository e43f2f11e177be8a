"""Perplexity of the dense embedded SmolLM2 on held-out Shakespeare, and the `clone eval` command."""

from __future__ import annotations

import json
import math

from clone.cli import main
from clone.eval.perplexity import perplexity


def test_dense_smollm2_shakespeare_perplexity_in_expected_range(smollm2):
    """Protocol: Shakespeare test split (by document), first 4,096 tokens, 512-token non-overlapping
    windows, no BOS. A correctly loaded 135M model scores tens here (about 30); a wrong RoPE layout,
    tokenizer or weight mapping gives hundreds to thousands."""
    res = perplexity(smollm2.model, smollm2.tokenizer, corpus="shakespeare", split="test", seq_len=512,
                     max_tokens=4096, progress=False)
    assert math.isfinite(res.ppl) and 10 < res.ppl < 60, res
    assert res.n_windows == 8 and res.n_tokens_scored == 4096 - 8
    text = res.protocol()
    assert "512-token windows" in text and "test split" in text and "4,088 tokens scored" in text


def test_eval_command_json(capsys, smollm2):
    code = main(["eval", "smollm2-135m", "--data", "bible", "--seq-len", "256", "--max-tokens", "1024", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    rec = json.loads(out.strip().splitlines()[-1])
    assert rec["corpus"] == "bible" and rec["seq_len"] == 256 and 2 < rec["ppl"] < 60


def test_eval_command_rejects_unknown_corpus(capsys):
    code = main(["eval", "smollm2-135m", "--data", "wikitext"])
    err = capsys.readouterr().err
    assert code == 2 and "wikitext" in err and "shakespeare" in err and "Traceback" not in err
