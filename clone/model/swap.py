"""Moving a model's tensors to a disk file and back, in place.

Why: some steps need the memory of a second copy of the weights for a moment while the PyTorch model
must survive them (checking an exported ONNX file in onnxruntime holds the whole network again).
Parking the model's weights on disk for that moment keeps peak memory at one copy. Tensors keep
their identity (parameters, tied weights, hooks and optimizer references stay valid): only their
storage is swapped, with `Tensor.set_`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every non-empty parameter and buffer; named_parameters/named_buffers already list a tied
    weight once, under its first name."""
    return {name: t for name, t in [*model.named_parameters(), *model.named_buffers()] if t.numel()}


@contextlib.contextmanager
def weights_swapped_out(model: nn.Module, directory: str | os.PathLike) -> Iterator[None]:
    """Inside the block the model's tensors are empty and their data sits in a temporary file under
    `directory`; on exit (also on an exception) they are read back into the same tensor objects."""
    tensors = _tensors(model)
    fd, name = tempfile.mkstemp(prefix=".swap-", suffix=".pt", dir=directory)
    os.close(fd)
    path = Path(name)
    try:
        torch.save({k: t.detach() for k, t in tensors.items()}, path)
        with torch.no_grad():
            for t in tensors.values():
                t.set_(torch.empty(0, dtype=t.dtype, device=t.device))
        try:
            yield
        finally:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            with torch.no_grad():
                for k, t in tensors.items():
                    t.set_(saved.pop(k))
    finally:
        path.unlink(missing_ok=True)
