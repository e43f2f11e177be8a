"""Generation backends with one interface (reset / prefill / decode): PyTorch and ONNX Runtime."""

from clone.runtime.backends.base import Backend, LayerHook
from clone.runtime.backends.ort_backend import OrtBackend
from clone.runtime.backends.torch_backend import TorchBackend

__all__ = ["Backend", "LayerHook", "OrtBackend", "TorchBackend"]
