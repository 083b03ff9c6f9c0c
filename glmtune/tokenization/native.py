"""The HF tokenizer of a native checkpoint (``tokenizer.json``), loaded without any checkpoint code.

``tokenizer_config.json`` is read for data only (special-token names, padding side, a ``chat_template``);
``tokenizer_class``/``auto_map`` are ignored. The chat template is ``chat_template.jinja`` when present (as
transformers 5 saves it), else the config's, else the family's own. ``make-tiny`` builds the tokenizer of a tiny
checkpoint here too: byte-level BPE from the tiny tiktoken ranks with the GLM-4 split pattern, then the family's
special tokens in their official order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from glmtune.errors import GlmtuneError


def _token_name(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def load_native_tokenizer(directory: Path, family: Any, cfg: dict[str, Any], **kwargs: Any) -> Any:
    """A ``PreTrainedTokenizerFast`` for ``directory``'s ``tokenizer.json`` (left padding, the family's template)."""
    from transformers import PreTrainedTokenizerFast

    path = directory / "tokenizer.json"
    try:
        tok = PreTrainedTokenizerFast(
            tokenizer_file=str(path),
            eos_token=_token_name(cfg.get("eos_token")) or "<|endoftext|>",
            pad_token=_token_name(cfg.get("pad_token")) or "<|endoftext|>",
            padding_side=kwargs.pop("padding_side", cfg.get("padding_side") or "left"),
            clean_up_tokenization_spaces=bool(cfg.get("clean_up_tokenization_spaces", False)),
            model_max_length=int(cfg.get("model_max_length") or 1 << 30),
            **kwargs,
        )
    except Exception as e:  # the tokenizers library's own parse errors
        raise GlmtuneError(f"{path}: cannot read tokenizer: {e}") from None
    jinja = directory / "chat_template.jinja"
    if jinja.is_file():
        tok.chat_template = jinja.read_text(encoding="utf-8")
    elif isinstance(cfg.get("chat_template"), str) and cfg["chat_template"]:
        tok.chat_template = cfg["chat_template"]
    else:
        tok.chat_template = family.chat_template()
    tok.glmtune_stop_ids = _generation_stops(directory / "generation_config.json")
    missing = [t for t in ("[gMASK]", "<sop>", "<|user|>", "<|assistant|>") if t not in tok.get_added_vocab()]
    if missing:
        raise GlmtuneError(f"{path}: not a GLM tokenizer (no special token {', '.join(missing)})")
    return tok


def _generation_stops(path: Path) -> list[int]:
    """The ``eos_token_id`` (one or a list) of a checkpoint's ``generation_config.json``."""
    if not path.is_file():
        return []
    try:
        ids = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id")
    except json.JSONDecodeError as e:
        raise GlmtuneError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    ids = ids if isinstance(ids, list) else [ids]
    return [i for i in ids if isinstance(i, int)]


def build_tiny_tokenizer(ranks_file: Path, specials: tuple[str, ...], template: str) -> Any:
    """The tokenizer of a tiny native checkpoint: tiny BPE ranks + ``specials`` after them, in order."""
    from tokenizers import AddedToken, Regex, decoders, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    from glmtune.tokenization.tiktoken_glm4 import GLM4_PATTERN

    fast = TikTokenConverter(vocab_file=str(ranks_file), pattern=GLM4_PATTERN).tokenizer()
    fast.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(GLM4_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    fast.decoder = decoders.ByteLevel()
    base = fast.get_vocab_size()
    fast.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    for k, t in enumerate(specials):
        if fast.token_to_id(t) != base + k:
            raise ValueError(f"special token {t} got id {fast.token_to_id(t)}, expected {base + k}")
    tok = PreTrainedTokenizerFast(
        tokenizer_object=fast,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = template
    return tok


def tiny_tokenizer_config(name_or_path: str) -> dict[str, Any]:
    """``tokenizer_config.json`` of a tiny native checkpoint (data only, as the official repos ship it)."""
    return {
        "name_or_path": f"tiny-{name_or_path.split('/')[-1]}",
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
        "do_lower_case": False,
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "padding_side": "left",
        "model_max_length": 128000,
        "model_input_names": ["input_ids", "attention_mask"],
    }
