"""A Llama-family decoder in plain PyTorch where every layer carries its own shape, plus loaders.

`load_checkpoint(name_or_path)` accepts the built-in name `smollm2-135m` (the embedded GGUF), a
`.gguf` file, a Hugging Face directory or a directory written by `save_checkpoint`.
"""

from clone.model.config import LayerShape, ModelConfig
from clone.model.llama import KVCache, Transformer

__all__ = ["LayerShape", "ModelConfig", "Transformer", "KVCache"]
