"""Tokenizer wrapper over Hugging Face `tokenizers`, built from tokenizer.json or GGUF metadata."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

from tokenizers import AddedToken, Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers

from clone.errors import CloneError

META_FILE = "tokenizer_meta.json"
CHATML_USER = "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"


class Tokenizer:
    def __init__(
        self,
        tok: HFTokenizer,
        bos_id: int | None = None,
        eos_ids: list[int] | None = None,
        chat_template: str | None = None,
        add_bos: bool = False,
    ) -> None:
        self.tok = tok
        self.bos_id = bos_id
        self.eos_ids = list(eos_ids or [])
        self.chat_template = chat_template
        self.add_bos = add_bos
        self.name_or_fingerprint = self._fingerprint()

    def _fingerprint(self) -> str:
        probe = "The quick brown fox, 1234 jumps. \u00e9\u4e2d"
        data = json.dumps([self.vocab_size, self.encode(probe, add_bos=False)]).encode()
        return hashlib.sha1(data).hexdigest()[:16]

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)

    @property
    def eos_id(self) -> int | None:
        return self.eos_ids[0] if self.eos_ids else None

    def encode(self, text: str, add_bos: bool | None = None) -> list[int]:
        ids = self.tok.encode(text, add_special_tokens=False).ids
        if (self.add_bos if add_bos is None else add_bos) and self.bos_id is not None:
            ids = [self.bos_id] + ids
        return ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tok.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=skip_special)

    def chat_prompt(self, prompt: str) -> str:
        """Wrap a user message in the checkpoint's own chat template (Jinja), as its trainers did."""
        if not self.chat_template:
            return prompt
        try:
            import jinja2

            env = jinja2.Environment(undefined=jinja2.ChainableUndefined)
            return env.from_string(self.chat_template).render(
                messages=[{"role": "user", "content": prompt}], add_generation_prompt=True,
                bos_token="", eos_token="")
        except Exception:
            if "<|im_start|>" in self.chat_template:
                return CHATML_USER.format(prompt=prompt)
            return prompt

    def save(self, directory: Path) -> None:
        self.tok.save(str(directory / "tokenizer.json"))
        meta = {"bos_id": self.bos_id, "eos_ids": self.eos_ids, "add_bos": self.add_bos,
                "chat_template": self.chat_template}
        (directory / META_FILE).write_text(json.dumps(meta, indent=1))

    @classmethod
    def from_directory(cls, directory: Path, config: dict[str, Any] | None = None) -> "Tokenizer":
        path = directory / "tokenizer.json"
        if not path.exists():
            raise CloneError(f"{directory}: no tokenizer.json")
        try:
            tok = HFTokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a plain Exception on bad JSON
            raise CloneError(f"{path}: cannot read tokenizer ({str(exc).splitlines()[0]})") from None
        meta_path = directory / META_FILE
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            return cls(tok, meta["bos_id"], meta["eos_ids"], meta["chat_template"], meta["add_bos"])
        return cls._from_hf_configs(tok, directory, config or {})

    @classmethod
    def _from_hf_configs(cls, tok: HFTokenizer, directory: Path, config: dict[str, Any]) -> "Tokenizer":
        tcfg: dict[str, Any] = {}
        if (directory / "tokenizer_config.json").exists():
            tcfg = json.loads((directory / "tokenizer_config.json").read_text())

        def token_id(value: Any) -> int | None:
            if isinstance(value, dict):
                value = value.get("content")
            return tok.token_to_id(value) if isinstance(value, str) else None

        bos = config.get("bos_token_id", token_id(tcfg.get("bos_token")))
        eos = config.get("eos_token_id", token_id(tcfg.get("eos_token")))
        eos_ids = eos if isinstance(eos, list) else ([eos] if eos is not None else [])
        template = tcfg.get("chat_template")
        return cls(tok, bos, eos_ids, template if isinstance(template, str) else None,
                   bool(tcfg.get("add_bos_token", False)))

    @classmethod
    def from_gguf_fields(cls, fields: dict[str, Any]) -> "Tokenizer":
        """Rebuild a byte-level BPE tokenizer from GGUF metadata (the `gpt2` tokenizer model)."""
        model = fields.get("tokenizer.ggml.model")
        if model != "gpt2":
            raise CloneError(f"GGUF tokenizer model {model!r} is not supported (supported: gpt2 byte-level BPE)")
        tokens: list[str] = fields["tokenizer.ggml.tokens"]
        merges = [tuple(m.split(" ", 1)) for m in fields["tokenizer.ggml.merges"]]
        types: list[int] = fields.get("tokenizer.ggml.token_type") or [1] * len(tokens)
        vocab = {t: i for i, t in enumerate(tokens)}
        tok = HFTokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
        )
        tok.decoder = decoders.ByteLevel()
        special = [AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3]
        tok.add_special_tokens(special)
        eos = fields.get("tokenizer.ggml.eos_token_id")
        return cls(
            tok,
            fields.get("tokenizer.ggml.bos_token_id"),
            [eos] if eos is not None else [],
            fields.get("tokenizer.chat_template"),
            bool(fields.get("tokenizer.ggml.add_bos_token", False)),
        )
