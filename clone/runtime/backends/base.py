"""The interface a generation backend offers the engine: one sequence at a time, KV cache inside.

`prefill(tokens)` starts a sequence and returns the logits of its last position; `decode(token)`
appends one token and returns its logits; `reset(max_len)` drops the sequence and makes room for
`max_len` tokens. Logits are a 1-D vector [vocab] (a torch tensor or a numpy array: both have
`argmax`). Backends that run the model layer by layer call the layer hook after every layer.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence, runtime_checkable

LayerHook = Callable[[int], None]


@runtime_checkable
class Backend(Protocol):
    name: str
    n_layers: int
    supports_layer_hooks: bool

    def reset(self, max_len: int) -> None: ...

    def prefill(self, tokens: Sequence[int]) -> Any: ...

    def decode(self, token: int) -> Any: ...

    def set_layer_hook(self, hook: LayerHook | None) -> None:
        """Call hook(layer_index) after each layer of every forward pass (None removes it)."""
