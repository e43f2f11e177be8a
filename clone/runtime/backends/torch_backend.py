"""PyTorch backend: the model itself with its preallocated KV cache; layer hooks through the model's
`layer_hooks` list, so a policy can act between layers."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from clone.errors import CloneError
from clone.model.llama import KVCache, Transformer
from clone.runtime.backends.base import LayerHook


class TorchBackend:
    name = "torch"
    supports_layer_hooks = True

    def __init__(self, model: Transformer, max_len: int = 512) -> None:
        self.model = model.eval()
        self.n_layers = model.config.n_layers
        self.cache: KVCache | None = None
        self._token = torch.zeros(1, 1, dtype=torch.long)
        self._hook: LayerHook | None = None
        self._installed = None
        self.reset(min(max_len, model.config.max_seq_len))

    def reset(self, max_len: int) -> None:
        if max_len > self.model.config.max_seq_len:
            raise CloneError(f"sequence of {max_len} tokens exceeds the model's maximum {self.model.config.max_seq_len}")
        if self.cache is None or self.cache.max_len < max_len:
            self.cache = self.model.new_cache(1, max_len)
        self.cache.reset()

    @torch.inference_mode()
    def prefill(self, tokens: Sequence[int]) -> Tensor:
        assert self.cache is not None
        self.cache.reset()
        ids = torch.as_tensor(list(tokens), dtype=torch.long).reshape(1, -1)
        return self.model(ids, cache=self.cache, last_only=True)[0, -1]

    @torch.inference_mode()
    def decode(self, token: int) -> Tensor:
        self._token[0, 0] = token
        return self.model(self._token, cache=self.cache)[0, -1]

    def set_layer_hook(self, hook: LayerHook | None) -> None:
        if self._installed is not None:
            self.model.layer_hooks.remove(self._installed)
            self._installed = None
        self._hook = hook
        if hook is not None:
            def call(i: int, _x: Tensor, hook: LayerHook = hook) -> None:
                hook(i)

            self._installed = call
            self.model.layer_hooks.append(call)

    def close(self) -> None:
        self.set_layer_hook(None)
