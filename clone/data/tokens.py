"""Tokenized corpus splits, cached on disk so calibration and evaluation do not re-tokenize.

The cache key is the tokenizer's fingerprint (its `name_or_fingerprint` attribute, else a hash of
how it encodes a fixed probe string), the corpus, the split and a hash of the split's text, so a
change of tokenizer or of corpus cleaning can never serve stale tokens. A split is encoded in one
`tokenizer.encode(split_text(...))` call, exactly the text `split_text` returns.
"""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from clone.data.corpora import split_text
from clone.atomic import write_bytes_atomic
from clone.data.paths import data_dir

PROBE = "Tokenizer probe: The quick brown fox jumps over 13 lazy dogs; naïve café, 東京, \n\t<|end|> ..."


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...


def tokenizer_fingerprint(tokenizer: Tokenizer) -> str:
    name = getattr(tokenizer, "name_or_fingerprint", None)
    if name:
        return str(name)
    probe = tokenizer.encode(PROBE)
    digest = hashlib.sha256(repr(list(probe)).encode()).hexdigest()[:16]
    return f"{type(tokenizer).__qualname__}-{digest}"


def _cache_path(tokenizer: Tokenizer, corpus: str, split: str, text: str) -> Path:
    tok_key = hashlib.sha256(tokenizer_fingerprint(tokenizer).encode()).hexdigest()[:16]
    text_key = hashlib.sha256(text.encode()).hexdigest()[:12]
    return data_dir() / "tokens" / tok_key / f"{corpus}-{split}-{text_key}.npy"


def encode_tokens(tokenizer: Tokenizer, text: str) -> torch.Tensor:
    ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
    return torch.from_numpy(ids)


def tokenize_split(tokenizer: Tokenizer, corpus: str = "shakespeare", split: str = "train") -> torch.Tensor:
    """The token ids of one corpus split as a 1-D LongTensor (from the disk cache when present)."""
    text = split_text(corpus, split)
    path = _cache_path(tokenizer, corpus, split, text)
    if path.is_file():
        return torch.from_numpy(np.load(path).astype(np.int64))
    print(f"tokenizing {corpus} {split} split ({len(text):,} characters)", file=sys.stderr)
    ids = encode_tokens(tokenizer, text)
    small = ids.numel() == 0 or (int(ids.min()) >= 0 and int(ids.max()) < 2**31)
    buffer = io.BytesIO()
    np.save(buffer, ids.numpy().astype(np.int32 if small else np.int64))
    write_bytes_atomic(path, buffer.getvalue())
    return ids
