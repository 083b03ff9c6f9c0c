"""Exact tokenizers of every family, exposed as transformers tokenizers (no checkpoint code is run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from glmtune.errors import GlmtuneError
from glmtune.families import Family


def load_tokenizer(directory: str | Path, family: Family, **kwargs: Any) -> Any:
    """The tokenizer of a checkpoint directory for ``family``.

    Reads ``tokenizer_config.json`` only for data (e.g. GLM-4's ``chat_template``, v1's ``num_image_tokens``);
    ``tokenizer_class``/``auto_map`` are ignored, so nothing from the directory is imported.
    """
    directory = Path(directory)
    vocab = directory / family.tokenizer_file
    if not vocab.is_file():
        raise GlmtuneError(f"{vocab}: missing tokenizer file for {family.title}")
    cfg_path = directory / "tokenizer_config.json"
    cfg: dict[str, Any] = {}
    if cfg_path.is_file():
        try:
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise GlmtuneError(f"{cfg_path}:{e.lineno}: invalid JSON: {e.msg}") from None
    if family.architecture == "native":  # the checkpoint's own HF tokenizer and chat template
        from glmtune.tokenization.native import load_native_tokenizer

        tokenizer = load_native_tokenizer(directory, family, cfg, **kwargs)
        tokenizer.glmtune_family = family.name
        return tokenizer
    try:
        tokenizer = _build(family, vocab, cfg, kwargs)
    except GlmtuneError:
        raise
    except Exception as e:  # sentencepiece / tiktoken parse errors
        raise GlmtuneError(f"{vocab}: cannot read tokenizer: {e}") from None
    tokenizer.chat_template = (
        cfg.get("chat_template") if family.name == "glm4" and cfg.get("chat_template") else (family.chat_template())
    )
    tokenizer.glmtune_family = family.name
    return tokenizer


def _build(family: Family, vocab: Path, cfg: dict[str, Any], kwargs: dict[str, Any]) -> Any:
    if family.name in ("chatglm2", "chatglm3"):
        from glmtune.tokenization.sentencepiece_glm import SentencePieceGLMTokenizer

        return SentencePieceGLMTokenizer(str(vocab), role_tokens=family.name == "chatglm3", **kwargs)
    if family.name == "glm4":
        from glmtune.tokenization.tiktoken_glm4 import GLM4Tokenizer

        return GLM4Tokenizer(str(vocab), **kwargs)
    if family.name == "chatglm":
        from glmtune.tokenization.icetext_v1 import ChatGLMv1Tokenizer

        return ChatGLMv1Tokenizer(str(vocab), num_image_tokens=int(cfg.get("num_image_tokens", 20000)), **kwargs)
    raise GlmtuneError(f"no tokenizer for family {family.name}")
