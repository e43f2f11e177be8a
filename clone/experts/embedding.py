"""Request embeddings from the served model itself: mean-pooled hidden states of one layer.

Why the model's own hidden states and not a sentence-embedding model (the paper uses BGE): nothing
extra to install or download (works offline), no second model in an edge board's memory, and the
router can read the layer output during the prefill the request needs anyway (a layer hook), so
routing costs a pooling and a few dot products instead of another forward pass.
The layer is the one two thirds deep: late enough to carry topic/style, early enough that it is not
yet specialised to next-token prediction.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class _Done(Exception):
    pass


def embedding_layer(model: nn.Module) -> int:
    return max(0, (2 * len(model.layers)) // 3 - 1)


@torch.no_grad()
def embed_tokens(model: nn.Module, tokens: Tensor, layer: int | None = None, prefix: int = 128) -> Tensor:
    """tokens [B, T] -> [B, dim] mean of layer `layer`'s hidden state over the first `prefix` tokens.
    Adapters are disabled for the pass so the embedding does not depend on the current mixture."""
    from clone.lora.adapter import lora_modules

    layer = embedding_layer(model) if layer is None else layer
    if tokens.dim() == 1:
        tokens = tokens[None]
    tokens = tokens[:, :prefix]
    captured: dict[str, Tensor] = {}

    def hook(i: int, hidden: Tensor) -> None:
        if i == layer:
            captured["h"] = hidden.float().mean(dim=1)
            raise _Done  # later layers and the LM head are not needed: stop the pass here

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
