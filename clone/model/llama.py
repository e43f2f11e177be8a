"""A Llama-family decoder (Llama, SmolLM, Qwen2) in plain PyTorch, in the spirit of gpt-fast.

Each decoder layer is built from its own LayerShape (heads, KV heads, FFN width), so a structurally
pruned model is an ordinary model here. Weight names follow Hugging Face's so that checkpoints,
LoRA targets and pruning code can address projections by their familiar names.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clone.errors import CloneError
from clone.model.config import LayerShape, ModelConfig

LayerHook = Callable[[int, Tensor], None]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rope_inv_freq(config: ModelConfig) -> Tensor:
    """Rotary inverse frequencies, with the Llama 3 and linear context-extension rules."""
    hd = config.head_dim
    inv = 1.0 / (config.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    scaling = config.rope_scaling or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind in (None, "default"):
        return inv.float()
    if kind == "linear":
        return (inv / float(scaling["factor"])).float()
    if kind == "llama3":
        factor = float(scaling["factor"])
        lo, hi = float(scaling["low_freq_factor"]), float(scaling["high_freq_factor"])
        old_ctx = float(scaling["original_max_position_embeddings"])
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > old_ctx / lo, inv / factor, inv)
        smooth = (old_ctx / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old_ctx / hi) & (wavelen <= old_ctx / lo)
        return torch.where(medium, smoothed, scaled).float()
    raise CloneError(f"unsupported rope_scaling type {kind!r} (supported: default, linear, llama3)")


def rotate_half(x: Tensor) -> Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x: [B, H, T, hd]; cos/sin: [T, hd] in the half-split (Hugging Face) layout."""
    return x * cos + rotate_half(x) * sin


class KVCache:
    """Preallocated keys and values per layer; each layer keeps its own KV-head count."""

    def __init__(self, config: ModelConfig, batch_size: int, max_len: int, dtype: torch.dtype) -> None:
        self.max_len = max_len
        self.pos = 0
        self.k: list[Tensor | None] = []
        self.v: list[Tensor | None] = []
        for shape in config.layers:
            if shape.n_kv_heads == 0:
                self.k.append(None)
                self.v.append(None)
                continue
            size = (batch_size, shape.n_kv_heads, max_len, config.head_dim)
            self.k.append(torch.zeros(size, dtype=dtype))
            self.v.append(torch.zeros(size, dtype=dtype))

    def reset(self) -> None:
        self.pos = 0

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v if t is not None)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig, shape: LayerShape) -> None:
        super().__init__()
        d, hd = config.dim, config.head_dim
        self.n_heads, self.n_kv_heads, self.head_dim = shape.n_heads, shape.n_kv_heads, hd
        bias = config.qkv_bias
        self.q_proj = nn.Linear(d, shape.n_heads * hd, bias=bias)
        self.k_proj = nn.Linear(d, shape.n_kv_heads * hd, bias=bias)
        self.v_proj = nn.Linear(d, shape.n_kv_heads * hd, bias=bias)
        self.o_proj = nn.Linear(shape.n_heads * hd, d, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache: KVCache | None, layer: int) -> Tensor:
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        start = cache.pos if cache is not None else 0
        mask = None
        causal = T > 1
        if cache is not None:
            cache.k[layer][:, :, start : start + T] = k
            cache.v[layer][:, :, start : start + T] = v
            if start > 0:
                k = cache.k[layer][:, :, : start + T]
                v = cache.v[layer][:, :, : start + T]
                causal = False
                if T > 1:
                    mask = torch.ones(T, start + T, dtype=torch.bool).tril(diagonal=start)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, enable_gqa=True)
        return self.o_proj(out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


class FeedForward(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, dim: int, ffn_dim: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, ffn_dim, bias=False)
        self.up_proj = nn.Linear(dim, ffn_dim, bias=False)
        self.down_proj = nn.Linear(ffn_dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, config: ModelConfig, shape: LayerShape) -> None:
        super().__init__()
        self.shape = shape
        self.input_layernorm = RMSNorm(config.dim, config.norm_eps) if shape.n_heads else None
        self.self_attn = Attention(config, shape) if shape.n_heads else None
        self.post_attention_layernorm = RMSNorm(config.dim, config.norm_eps) if shape.ffn_dim else None
        self.mlp = FeedForward(config.dim, shape.ffn_dim) if shape.ffn_dim else None

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, cache: KVCache | None, layer: int) -> Tensor:
        if self.self_attn is not None:
            x = x + self.self_attn(self.input_layernorm(x), cos, sin, cache, layer)
        if self.mlp is not None:
            x = x + self.mlp(self.post_attention_layernorm(x))
        return x


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(DecoderLayer(config, s) for s in config.layers)
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.layer_hooks: list[LayerHook] = []
        self._rope_len = 0
        self.register_buffer("rope_cos", torch.empty(0), persistent=False)
        self.register_buffer("rope_sin", torch.empty(0), persistent=False)

    def _rope(self, start: int, length: int) -> tuple[Tensor, Tensor]:
        end = start + length
        if end > self._rope_len:
            n = max(end, min(self.config.max_seq_len, 4096), 2 * self._rope_len)
            inv = rope_inv_freq(self.config)
            freqs = torch.outer(torch.arange(n, dtype=torch.float32), inv)
            emb = torch.cat((freqs, freqs), dim=-1)
            dtype = self.embed_tokens.weight.dtype
            self.rope_cos, self.rope_sin = emb.cos().to(dtype), emb.sin().to(dtype)
            self._rope_len = n
        return self.rope_cos[start:end], self.rope_sin[start:end]

    def new_cache(self, batch_size: int = 1, max_len: int | None = None) -> KVCache:
        max_len = max_len or self.config.max_seq_len
        return KVCache(self.config, batch_size, max_len, self.embed_tokens.weight.dtype)

    def forward(self, tokens: Tensor, cache: KVCache | None = None, last_only: bool = False) -> Tensor:
        """tokens [B, T] -> logits [B, T, V] (or [B, 1, V] with last_only). With a cache, the tokens
        continue the cached sequence and the cache advances by T."""
        T = tokens.shape[1]
        start = cache.pos if cache is not None else 0
        if cache is not None and start + T > cache.max_len:
            raise CloneError(f"sequence of {start + T} tokens exceeds the KV cache length {cache.max_len}")
        cos, sin = self._rope(start, T)
        x = self.embed_tokens(tokens)
        for i, layer in enumerate(self.layers):
            x = layer(x, cos, sin, cache, i)
            for hook in self.layer_hooks:
                hook(i, x)
        if cache is not None:
            cache.pos += T
        if last_only:
            x = x[:, -1:]
        return self.lm_head(self.norm(x))

    def param_count(self) -> int:
        """Float parameter tensors only: packed low-bit weights are buffers, so a quantized model counts
        less here; `config.param_count()` is the logical count."""
        return sum(p.numel() for p in {id(p): p for p in self.parameters()}.values())
