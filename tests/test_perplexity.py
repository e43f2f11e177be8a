"""Perplexity: exact values on hand-made models, the sliding-window protocol, and its report."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clone.data import paths
from clone.data.corpora import split_text
from clone.errors import CloneError
from clone.eval.perplexity import PerplexityResult, perplexity, perplexity_of_tokens, plan_windows


class CharTokenizer:
    name_or_fingerprint = "test-char-256"

    def encode(self, text: str) -> list[int]:
        return [min(ord(c), 255) for c in text]


class UniformModel(nn.Module):
    """Equal logits everywhere: every token has probability 1/V, so perplexity is exactly V."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*tokens.shape, self.vocab)


class SuccessorModel(nn.Module):
    """Predicts (t + 1) mod V with near-certainty: perfect on a counting sequence."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return 50.0 * F.one_hot((tokens + 1) % self.vocab, self.vocab).float()


class BigramModel(nn.Module):
    """Logits depend on the current token only, so any window with >= 1 token of context gives the
    same prediction as the full sequence: sliding-window NLL must equal full-sequence NLL."""

    def __init__(self, vocab: int, seed: int = 0) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(seed)))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.table[tokens]


class PrefixMeanModel(nn.Module):
    """A causal model with real context dependence: logits from the running mean of embeddings."""

    def __init__(self, vocab: int, dim: int = 8) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.embed = nn.Parameter(torch.randn(vocab, dim, generator=g))
        self.head = nn.Parameter(torch.randn(dim, vocab, generator=g))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed[tokens].cumsum(1) / torch.arange(1, tokens.shape[1] + 1).view(1, -1, 1)
        return x @ self.head


def full_sequence_nll(model: nn.Module, tokens: torch.Tensor) -> float:
    with torch.no_grad():
        logits = model(tokens[None])[0]
    return F.cross_entropy(logits[:-1], tokens[1:], reduction="sum").item()


def random_tokens(n: int, vocab: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("vocab", [7, 256, 1000])
def test_uniform_logits_give_the_vocabulary_size(vocab):
    result = perplexity_of_tokens(UniformModel(vocab), random_tokens(300, vocab), seq_len=64, progress=False)
    assert result.ppl == pytest.approx(vocab, rel=1e-6)
    assert result.nll_mean == pytest.approx(math.log(vocab), rel=1e-6)


def test_perfect_next_token_model_gives_perplexity_one():
    vocab = 50
    stream = torch.arange(1000) % vocab
    result = perplexity_of_tokens(SuccessorModel(vocab), stream, seq_len=128, stride=32, progress=False)
    assert result.ppl == pytest.approx(1.0, abs=1e-6)
    # and a wrong stream is punished: the same model on a reversed count is far from 1
    bad = perplexity_of_tokens(SuccessorModel(vocab), stream.flip(0), seq_len=128, progress=False)
    assert bad.ppl > 1e6


@pytest.mark.parametrize("n,seq_len,stride", [(1000, 64, 16), (1000, 64, 63), (1000, 64, 1), (1001, 50, 7), (65, 64, 8)])
def test_sliding_windows_score_every_token_but_the_first_exactly_once(n, seq_len, stride):
    windows = plan_windows(n, seq_len, stride)
    scored = [p for w in windows for p in range(w.score_from, w.end)]
    assert sorted(scored) == list(range(1, n))
    assert all(w.end - w.begin <= seq_len and w.begin < w.score_from for w in windows)
    result = perplexity_of_tokens(UniformModel(5), random_tokens(n, 5), seq_len=seq_len, stride=stride, progress=False)
    assert result.n_tokens_scored == n - 1
    assert result.n_windows == len(windows)


def test_sliding_window_nll_matches_full_sequence_for_a_bigram_model():
    vocab, tokens = 11, random_tokens(777, 11, seed=3)
    model = BigramModel(vocab)
    expected = full_sequence_nll(model, tokens) / (len(tokens) - 1)
    for stride in (1, 5, 31):
        result = perplexity_of_tokens(model, tokens, seq_len=32, stride=stride, progress=False)
        assert result.nll_mean == pytest.approx(expected, rel=1e-6), stride


def test_non_overlapping_windows_leave_each_window_start_unscored():
    vocab, tokens = 11, random_tokens(1000, 11, seed=4)
    model = BigramModel(vocab)
    result = perplexity_of_tokens(model, tokens, seq_len=128, progress=False)
    assert result.stride == 128 and result.n_windows == 8  # 7 full windows + one of 104 tokens
    assert result.n_tokens_scored == 1000 - 8
    with torch.no_grad():
        per_token = F.cross_entropy(model(tokens[None])[0][:-1], tokens[1:], reduction="none")
    unscored = [127 + 128 * k for k in range(7)]  # predicting positions 128, 256, ...
    mask = torch.ones(999, dtype=torch.bool)
    mask[unscored] = False
    assert result.nll_mean == pytest.approx(per_token[mask].mean().item(), rel=1e-6)


def test_one_window_equals_the_full_sequence_for_a_context_model():
    tokens = random_tokens(200, 13, seed=5)
    model = PrefixMeanModel(13)
    result = perplexity_of_tokens(model, tokens, seq_len=256, progress=False)
    assert result.n_windows == 1
    assert result.nll_mean == pytest.approx(full_sequence_nll(model, tokens) / 199, rel=1e-6)


def test_batching_does_not_change_the_result():
    tokens = random_tokens(1100, 13, seed=6)
    model = PrefixMeanModel(13)
    runs = [perplexity_of_tokens(model, tokens, seq_len=100, stride=30, batch_size=b, progress=False)
            for b in (1, 3, 64)]
    assert all(r.n_tokens_scored == runs[0].n_tokens_scored for r in runs)
    assert all(r.nll_mean == pytest.approx(runs[0].nll_mean, rel=1e-9) for r in runs)


def test_training_mode_is_restored():
    model = BigramModel(5).train()
    perplexity_of_tokens(model, random_tokens(50, 5), seq_len=16, progress=False)
    assert model.training


def test_rows_of_a_calibration_batch_are_scored_independently():
    batch = torch.stack([random_tokens(40, 9, seed=s) for s in range(6)])
    model = PrefixMeanModel(9)
    result = perplexity_of_tokens(model, batch, progress=False, corpus="shakespeare", split="calibration")
    assert (result.n_windows, result.seq_len, result.n_tokens_scored) == (6, 40, 6 * 39)
    expected = sum(full_sequence_nll(model, row) for row in batch) / (6 * 39)
    assert result.nll_mean == pytest.approx(expected, rel=1e-6)


def test_protocol_states_window_stride_split_and_token_count():
    result = PerplexityResult(ppl=42.0, nll_mean=math.log(42.0), n_tokens_scored=123_456,
                              n_tokens_total=123_700, n_windows=241, seq_len=512, stride=512,
                              corpus="shakespeare", split="test", n_tokens_evaluated=123_700)
    text = result.protocol()
    for part in ("shakespeare test split", "512-token windows", "stride 512", "123,456 tokens scored",
                 "BOS not prepended"):
        assert part in text
    assert "first" not in text


def test_perplexity_on_a_corpus_split_with_a_token_budget(tmp_path, monkeypatch):
    real = paths.data_dir()
    (tmp_path / "shakespeare").symlink_to(real / "shakespeare")
    monkeypatch.setenv(paths.ENV_VAR, str(tmp_path))
    n_chars = len(split_text("shakespeare", "test"))
    result = perplexity(UniformModel(256), CharTokenizer(), "shakespeare", "test", seq_len=256,
                        stride=128, max_tokens=5000, progress=False)
    assert result.ppl == pytest.approx(256, rel=1e-6)
    assert (result.n_tokens_total, result.n_tokens_evaluated, result.n_tokens_scored) == (n_chars, 5000, 4999)
    text = result.protocol()
    assert "shakespeare test split, 256-token windows, stride 128" in text
    assert f"4,999 tokens scored (first 5,000 of {n_chars:,} tokens)" in text


def test_bad_arguments_raise_clone_errors():
    tokens = random_tokens(100, 5)
    with pytest.raises(CloneError, match="stride=100"):
        perplexity_of_tokens(UniformModel(5), tokens, seq_len=64, stride=100, progress=False)
    with pytest.raises(CloneError, match="seq_len=1"):
        perplexity_of_tokens(UniformModel(5), tokens, seq_len=1, progress=False)
    with pytest.raises(CloneError, match="need at least 2"):
        perplexity_of_tokens(UniformModel(5), tokens[:1], seq_len=64, progress=False)
    with pytest.raises(CloneError, match="'nosuch'"):
        perplexity(UniformModel(5), CharTokenizer(), corpus="nosuch", progress=False)
