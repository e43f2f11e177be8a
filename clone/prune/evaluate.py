"""Perplexity of a pruned model without building it: the windows go through the base model layer by
layer, and each layer is pruned just before it runs and dropped just after.

Why: the ratio search scores hundreds of candidates. Building each pruned model with `prune_model`
holds a second model-sized copy next to the base (1x more memory for a 1B model); here the extra
memory is one pruned layer plus the windows' hidden states, and every window passes a layer in one
batched call (one GEMM per projection instead of one per window). The numbers are those of
`perplexity_of_tokens(prune_model(model, ...), tokens, seq_len)`: same windows, same scoring.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from clone.errors import CloneError
from clone.eval.perplexity import PerplexityResult, Window, _batches, plan_windows, window_nll
from clone.model.config import ModelConfig
from clone.model.llama import Transformer
from clone.prune.importance import Importance
from clone.prune.pruner import prune_layer

CHUNK_TOKENS = 4096  # tokens per layer call: bounds the MLP's intermediate activations


def _chunks(stream: Tensor, windows: list[Window], chunk_tokens: int) -> list[tuple[list[Window], Tensor]]:
    """Equal-length windows stacked into [b, L] inputs of at most `chunk_tokens` tokens each."""
    out = []
    for group in _batches(windows, len(windows)):
        length = group[0].end - group[0].begin
        per = max(1, chunk_tokens // length)
        for s in range(0, len(group), per):
            part = group[s:s + per]
            out.append((part, torch.stack([stream[w.begin:w.end] for w in part])))
    return out


@torch.no_grad()  # not inference_mode: the model's cached RoPE tables must stay usable by autograd
def pruned_perplexity(model: Transformer, config: ModelConfig, importance: Importance | None, tokens: Tensor,
                      seq_len: int, *, chunk_tokens: int = CHUNK_TOKENS, corpus: str = "tokens",
                      split: str = "given") -> PerplexityResult:
    """Perplexity of `model` pruned to `config` (kept structures chosen by `importance`) on a 1-D
    token stream cut into non-overlapping `seq_len` windows; `model` is not modified."""
    stream = torch.as_tensor(tokens, dtype=torch.long).reshape(-1)
    windows = plan_windows(stream.numel(), seq_len, seq_len)
    if not windows:
        raise CloneError(f"perplexity: {stream.numel()} tokens; need at least 2 to score one")
    if len(config.layers) != model.config.n_layers:
        raise CloneError(f"pruned config has {len(config.layers)} layers, the model has {model.config.n_layers}")
    chunks = _chunks(stream, windows, chunk_tokens)
    hidden = [model.embed_tokens(ids) for _, ids in chunks]
    for i, shape in enumerate(config.layers):
        layer = prune_layer(model, i, shape, importance)
        for c, (_, ids) in enumerate(chunks):
            cos, sin = model._rope(0, ids.shape[1])
            hidden[c] = layer(hidden[c], cos, sin, None, i)
        del layer
    nll_sum, n_scored = 0.0, 0
    for (part, ids), h in zip(chunks, hidden):
        for row, w in enumerate(part):  # one window's logits at a time: [L, vocab]
            nll, n = window_nll(model.lm_head(model.norm(h[row])), ids[row], w)
            nll_sum, n_scored = nll_sum + nll, n_scored + n
    mean = nll_sum / n_scored
    return PerplexityResult(ppl=math.exp(mean), nll_mean=mean, n_tokens_scored=n_scored,
                            n_tokens_total=stream.numel(), n_windows=len(windows), seq_len=seq_len,
                            stride=seq_len, corpus=corpus, split=split, n_tokens_evaluated=stream.numel())
