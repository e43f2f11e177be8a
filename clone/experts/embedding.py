"""Request embeddings from the served model itself: mean-pooled hidden states of one layer.

Why the model's own hidden states and not a sentence-embedding model (the paper uses BGE): nothing
extra to install or download (works offline), no second model in an edge board's memory, and the
router can read the layer output during the prefill the request needs anyway (a layer hook), so
routing costs a pooling and a few dot products instead of another forward pass.
The layer is the one two thirds deep: late enough to carry topic/style, early enough that it is not
yet specialised to next-token prediction.

Pooling: the mean of the token states' directions (each state scaled to unit norm), the first token
left out. Why: on SmolLM2 the first position holds a "massive activation" (attention sink, about 100x
the norm of the other states, the same whatever the text) and a few other tokens do too; in a plain
mean the first token alone was about half the vector, so the embedding changed with the prompt's
length rather than its content (short prompts all routed to one expert). POOLING_VERSION marks
embeddings made this way (clone.experts.expert_set refuses older ones).

Chunks: a prompt may mix domains (a Shakespeare quote, then a question about code). One mean over
the whole prompt blurs that into one point that usually lies nearer one expert; pooling per chunk of
`chunk` tokens keeps one embedding per part, so the router can give each part its own weights and
average them (clone.experts.router). All chunks come from the same single pass.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


POOLING_VERSION = 2


class _Done(Exception):
    pass


def embedding_layer(model: nn.Module) -> int:
    return max(0, (2 * len(model.layers)) // 3 - 1)


@torch.no_grad()
def layer_states(model: nn.Module, tokens: Tensor, layer: int | None = None, prefix: int = 128) -> Tensor:
    """tokens [B, T] -> [B, min(T, prefix), dim] hidden states after layer `layer` (fp32).
    Adapters are disabled for the pass so the embedding does not depend on the current mixture, and the
    pass stops at `layer`: later layers and the LM head are not needed."""
    from clone.lora.adapter import lora_modules

    layer = embedding_layer(model) if layer is None else layer
    if tokens.dim() == 1:
        tokens = tokens[None]
    tokens = tokens[:, :prefix]
    captured: dict[str, Tensor] = {}

    def hook(i: int, hidden: Tensor) -> None:
        if i == layer:
            captured["h"] = hidden.float()
            raise _Done

    saved = {p: dict(m.mix) for p, m in lora_modules(model).items()}
    for m in lora_modules(model).values():
        m.mix = {n: 0.0 for n in m.mix}
    model.layer_hooks.append(hook)
    try:
        model(tokens, last_only=True)
    except _Done:
        pass
    finally:
        model.layer_hooks.remove(hook)
        for p, m in lora_modules(model).items():
            m.mix = saved[p]
    return captured["h"]


def token_directions(states: Tensor) -> Tensor:
    """[B, T, dim] -> unit-norm states without the first position (kept only if it is the only one)."""
    states = states[:, 1:] if states.shape[1] > 1 else states
    return states / states.norm(dim=-1, keepdim=True).clamp_min(1e-6)


def pool_chunks(states: Tensor, chunk: int = 0) -> tuple[Tensor, Tensor]:
    """states [B, T, dim] -> (pooled directions per chunk [B, C, dim], tokens per chunk [C]);
    chunk 0 = one chunk for the whole prompt."""
    dirs = token_directions(states)
    parts = torch.split(dirs, dirs.shape[1] if chunk <= 0 else chunk, dim=1)
    return torch.stack([p.mean(dim=1) for p in parts], dim=1), torch.tensor([float(p.shape[1]) for p in parts])


def embed_tokens(model: nn.Module, tokens: Tensor, layer: int | None = None, prefix: int = 128) -> Tensor:
    """tokens [B, T] -> [B, dim]: the pooled layer-`layer` state of the first `prefix` tokens."""
    return pool_chunks(layer_states(model, tokens, layer, prefix))[0][:, 0]
