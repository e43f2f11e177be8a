"""QuantLinear: a Linear layer that holds packed low-bit weights and runs from them.

Buffers (saved in state dicts and checkpoints): `qweight` uint8 packed codes [out, in*bits/8],
`scales` [out, n_groups] (fp16 by default), `zeros` uint8 [out, n_groups] (asymmetric only), `bias`
(if any, in the model dtype). The forward pass dequantizes the weight on the fly into the input's
dtype; `cache_weight(True)` keeps the dequantized copy for speed (not counted, not saved). The memory
the toolkit reports for a quantized layer is `nbytes()`: the packed bytes plus scales, zeros and bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clone.quant.quantizer import QuantSpec, dequantize_codes, pack, quantize_rtn, unpack


class QuantLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, spec: QuantSpec, bias: bool = False,
                 bias_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.in_features, self.out_features, self.spec = in_features, out_features, spec
        n_groups = spec.n_groups(in_features)
        packed = (in_features * spec.bits + 7) // 8
        self.register_buffer("qweight", torch.zeros(out_features, packed, dtype=torch.uint8))
        self.register_buffer("scales", torch.ones(out_features, n_groups, dtype=spec.torch_scale_dtype))
        self.register_buffer("zeros", None if spec.symmetric else torch.zeros(out_features, n_groups, dtype=torch.uint8))
        self.register_buffer("bias", torch.zeros(out_features, dtype=bias_dtype) if bias else None)
        self._cache: Tensor | None = None
        self._use_cache = False

    @classmethod
    def from_codes(cls, codes: Tensor, scale: Tensor, zero: Tensor | None, spec: QuantSpec,
                   bias: Tensor | None = None) -> "QuantLinear":
        out, n_in = codes.shape
        bias_dtype = bias.dtype if bias is not None else torch.float32
        layer = cls(n_in, out, spec, bias is not None, bias_dtype)
        layer.qweight = pack(codes, spec.bits)
        layer.scales = scale.to(spec.torch_scale_dtype).contiguous()
        layer.zeros = None if zero is None else zero.to(torch.uint8).contiguous()
        layer.bias = None if bias is None else bias.detach().clone()
        return layer

    @classmethod
    def from_linear(cls, linear: nn.Linear, spec: QuantSpec) -> "QuantLinear":
        """Round-to-nearest quantization of an existing Linear layer."""
        codes, scale, zero = quantize_rtn(linear.weight.detach(), spec)
        return cls.from_codes(codes, scale, zero, spec, linear.bias)

    def codes(self) -> Tensor:
        return unpack(self.qweight, self.spec.bits, self.in_features)

    def dequantize(self, dtype: torch.dtype = torch.float32) -> Tensor:
        return dequantize_codes(self.codes(), self.scales, self.zeros, self.spec, dtype)

    def cache_weight(self, enabled: bool = True) -> None:
        self._use_cache = enabled
        self._cache = None

    def forward(self, x: Tensor) -> Tensor:
        if self._use_cache:
            stale = self._cache is None or self._cache.dtype != x.dtype
            if stale or (self._cache.is_inference() and not torch.is_inference_mode_enabled()):
                self._cache = self.dequantize(x.dtype)
            w = self._cache
        else:
            w = self.dequantize(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, w, bias)

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.qweight, self.scales, self.zeros, self.bias) if t is not None)

    def extra_repr(self) -> str:
        s = self.spec
        g = s.group_size or "per-channel"
        return (f"in_features={self.in_features}, out_features={self.out_features}, bits={s.bits}, group_size={g}, "
                f"symmetric={s.symmetric}, bias={self.bias is not None}")
