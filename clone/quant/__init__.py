"""Weight-only group-wise affine quantization (INT8 / INT4, symmetric or asymmetric), RTN or GPTQ.

    quantize_model(model, bits=4, group_size=128, method="gptq", calib=tokens)   # in place
    model_nbytes(model)                                                          # packed bytes
"""

from clone.quant.gptq import HessianAccumulator, gptq_quantize
from clone.quant.linear import QuantLinear
from clone.quant.model import (
    METHODS,
    TARGETS,
    model_nbytes,
    quantization_record,
    quantize_model,
    quantized_modules,
    target_modules,
)
from clone.quant.quantizer import (
    BITS,
    QuantSpec,
    check_width,
    dequantize_codes,
    fake_quantize,
    make_spec,
    pack,
    quantize_codes,
    quantize_rtn,
    unpack,
)

__all__ = [
    "BITS", "METHODS", "TARGETS", "HessianAccumulator", "QuantLinear", "QuantSpec", "check_width",
    "dequantize_codes", "fake_quantize", "gptq_quantize", "make_spec", "model_nbytes", "pack",
    "quantization_record", "quantize_codes", "quantize_model", "quantize_rtn", "quantized_modules",
    "target_modules", "unpack",
]
