"""Export of models to deployable formats: ONNX with the KV cache as inputs and outputs."""

from clone.export.onnx import export_onnx, verify_onnx

__all__ = ["export_onnx", "verify_onnx"]
