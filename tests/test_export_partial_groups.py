"""Pruned widths that the quantization group does not divide still export exactly to ONNX."""

from __future__ import annotations

import pytest

from clone.export.onnx import export_onnx, tolerance_for, verify_onnx
from clone.model.config import LayerShape
from clone.quant import quantize_model
from tests.conftest import tiny_config, tiny_model


@pytest.mark.parametrize("ffn,group,bits", [(96, 64, 4), (100, 64, 4), (100, 32, 8), (96, 0, 4)])
def test_partial_last_group_exports_exactly(tmp_path, ffn, group, bits):
    model = tiny_model(tiny_config(layers=[LayerShape(4, 2, ffn)] * 2, dim=64, head_dim=16))
    quantize_model(model, bits=bits, group_size=group, partial_groups=True)
    info = export_onnx(model, tmp_path / "m.onnx")
    assert info.n_matmul_float == 1  # only the output head stays float
    assert verify_onnx(model, info.path, list(range(1, 12))) <= tolerance_for(info.path)
