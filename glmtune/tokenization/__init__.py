"""Exact tokenizers of every family, exposed as transformers tokenizers (no checkpoint code is run)."""

from __future__ import annotations

import json
from importlib import import_module
from pathlib import Path
from typing import Any

from glmtune.errors import GlmtuneError
from glmtune.families import Family


def load_tokenizer(directory: str | Path, family: Family, **kwargs: Any) -> Any:
    """The tokenizer of a checkpoint directory for ``family``.

    Reads ``tokenizer_config.json`` only for data (e.g. GLM-4's ``chat_template``, v1's ``num_image_tokens``);
    ``tokenizer_class``/``auto_map`` are ignored, so nothing from the directory is imported.
    """
    return _load(directory, family, family.tokenizer_class, kwargs)


def load_encoder(directory: str | Path, family: Family) -> Any:
    """What the default-mode renderers need of a tokenizer, as light as the family allows: its
    :attr:`~glmtune.families.Family.encoder_class` where it has one (ChatGLM2/3: the official ``SPTokenizer``
    layer alone, no transformers import), else the full tokenizer. Same cache key as :func:`load_tokenizer`."""
    return _load(directory, family, family.encoder_class or family.tokenizer_class, {})


def _load(directory: str | Path, family: Family, class_name: str, kwargs: dict[str, Any]) -> Any:
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
        tokenizer = _tokenizer_class(family, class_name)(str(vocab), **family.tokenizer_options(cfg), **kwargs)
    except GlmtuneError:
        raise
    except Exception as e:  # sentencepiece / tiktoken parse errors
        raise GlmtuneError(f"{vocab}: cannot read tokenizer: {e}") from None
    tokenizer.chat_template = family.template_for(cfg)
    tokenizer.glmtune_family = family.name
    return tokenizer


def _tokenizer_class(family: Family, name: str = "") -> type:
    """The family's :attr:`~glmtune.families.Family.tokenizer_class` (or ``name``), imported."""
    name = name or family.tokenizer_class
    if not name:
        raise GlmtuneError(f"no tokenizer for family {family.name}")
    module, attr = name.split(":")
    return getattr(import_module(module), attr)
