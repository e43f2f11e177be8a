"""Model configuration with per-layer shapes, so a pruned model is a first-class model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from clone.errors import CloneError

SUPPORTED_ARCHS = ("llama", "qwen2")


@dataclass(frozen=True)
class LayerShape:
    """Shape of one decoder layer. n_heads == 0 drops attention, ffn_dim == 0 drops the MLP."""

    n_heads: int
    n_kv_heads: int
    ffn_dim: int

    def __post_init__(self) -> None:
        if self.n_heads < 0 or self.n_kv_heads < 0 or self.ffn_dim < 0:
            raise CloneError(f"layer shape has a negative size: {self}")
        if (self.n_heads == 0) != (self.n_kv_heads == 0):
            raise CloneError(f"layer shape: n_heads and n_kv_heads must both be zero or both positive: {self}")
        if self.n_kv_heads and self.n_heads % self.n_kv_heads:
            raise CloneError(
                f"layer shape: n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}"
            )


@dataclass
class ModelConfig:
    arch: str
    vocab_size: int
    dim: int
    head_dim: int
    layers: list[LayerShape]
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    qkv_bias: bool = False
    max_seq_len: int = 2048
    rope_scaling: dict[str, Any] | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.arch not in SUPPORTED_ARCHS:
            raise CloneError(f"unsupported architecture {self.arch!r} (supported: {', '.join(SUPPORTED_ARCHS)})")
        for key in ("vocab_size", "dim", "head_dim", "max_seq_len"):
            if int(getattr(self, key)) <= 0:
                raise CloneError(f"model config: {key} must be positive, got {getattr(self, key)}")
        self.layers = [l if isinstance(l, LayerShape) else LayerShape(**l) for l in self.layers]

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @classmethod
    def uniform(cls, *, n_layers: int, n_heads: int, n_kv_heads: int, ffn_dim: int, **kw: Any) -> "ModelConfig":
        """A dense model: every layer has the same shape."""
        return cls(layers=[LayerShape(n_heads, n_kv_heads, ffn_dim) for _ in range(n_layers)], **kw)

    def is_uniform(self) -> bool:
        return len(set(self.layers)) <= 1

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = [asdict(l) for l in self.layers]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise CloneError(f"model config: unknown keys {sorted(unknown)}")
        return cls(**d)

    def param_count(self) -> int:
        """Parameters, counting tied embeddings once."""
        emb = self.vocab_size * self.dim
        total = emb + (0 if self.tie_embeddings else emb) + self.dim  # final norm
        for l in self.layers:
            total += self.layer_params(l)
        return total

    def layer_params(self, l: LayerShape) -> int:
        d, hd = self.dim, self.head_dim
        attn = 0
        if l.n_heads:
            attn = d * hd * (l.n_heads + 2 * l.n_kv_heads) + l.n_heads * hd * d + d
            if self.qkv_bias:
                attn += hd * (l.n_heads + 2 * l.n_kv_heads)
        mlp = 3 * d * l.ffn_dim + d if l.ffn_dim else 0
        return attn + mlp
