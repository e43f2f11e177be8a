"""Calibration batches for the optimizer: seeded random token windows from a tokenized split.

Windows are drawn uniformly (with replacement) over all start positions of the split's token
stream, so they may cross document boundaries, as in the usual GPTQ/SparseGPT calibration recipe.
"""

from __future__ import annotations

import torch

from clone.data.tokens import Tokenizer, tokenize_split
from clone.errors import CloneError


def sample_windows(tokens: torch.Tensor, n_samples: int, seq_len: int, seed: int = 0) -> torch.Tensor:
    """`n_samples` windows of `seq_len` consecutive tokens from a 1-D token stream, seeded."""
    if n_samples < 1 or seq_len < 1:
        raise CloneError(f"calibration: n_samples={n_samples} and seq_len={seq_len} must both be >= 1")
    tokens = torch.as_tensor(tokens, dtype=torch.long).reshape(-1)
    if tokens.numel() < seq_len:
        raise CloneError(
            f"calibration: seq_len={seq_len} is longer than the {tokens.numel()} tokens available"
        )
    generator = torch.Generator().manual_seed(int(seed))
    starts = torch.randint(0, tokens.numel() - seq_len + 1, (n_samples,), generator=generator)
    return tokens[starts[:, None] + torch.arange(seq_len)]


def calibration_samples(
    tokenizer: Tokenizer,
    corpus: str = "shakespeare",
    split: str = "train",
    n_samples: int = 128,
    seq_len: int = 512,
    seed: int = 0,
) -> torch.Tensor:
    """A LongTensor [n_samples, seq_len] of token windows from `corpus`'s `split`."""
    return sample_windows(tokenize_split(tokenizer, corpus, split), n_samples, seq_len, seed)
