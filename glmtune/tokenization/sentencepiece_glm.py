"""Exact ChatGLM2 / ChatGLM3 tokenizer: SentencePiece plus special tokens appended after the base vocabulary.

Reimplements what the official ``tokenization_chatglm.py`` computes, as a transformers ``PythonBackend`` tokenizer
so ``Trainer``, collators, ``generate`` and ``apply_chat_template`` work, without running any checkpoint code.

Official behaviours kept on purpose (they decide token ids, see docs/differences.md):
- ``encode``/``__call__`` map a SentencePiece piece spelled like a special token (``sop``) to the special id;
  ``build_single_message`` encodes straight through SentencePiece and is unaffected.
- role tokens written in text (``<|user|>``) are plain text unless ``encode_special_tokens=True``.
- padding is on the left and also pads ``position_ids``.
- ``decode``: ChatGLM2's special ids (and eos/bos/pad) are '', ChatGLM3's special ids are their names.
Fixed on purpose: ids of the padded-vocab rows decode to '' (as ChatGLM3's; the official ChatGLM2 raised IndexError).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from glmtune.tokenization.base import GLMTokenizerBase, PrefixTokenizerMixin
from glmtune.tokenization.sp_core import BASE_SPECIAL_TOKENS, ROLE_TOKENS, SentencePieceCore

__all__ = ["BASE_SPECIAL_TOKENS", "ROLE_TOKENS", "SentencePieceGLMTokenizer"]
PREFIX_TEXT = "[gMASK]sop"  # how the family chat templates write the prefix


class SentencePieceGLMTokenizer(SentencePieceCore, PrefixTokenizerMixin, GLMTokenizerBase):
    """Tokenizer of ChatGLM2-6B (``role_tokens=False``) and ChatGLM3-6B (``role_tokens=True``)."""

    def __init__(
        self,
        vocab_file: str,
        role_tokens: bool = True,
        padding_side: str = "left",
        clean_up_tokenization_spaces: bool = False,
        encode_special_tokens: bool = False,
        **kwargs: Any,
    ) -> None:
        SentencePieceCore.__init__(self, vocab_file, role_tokens)
        self.encode_special_tokens = encode_special_tokens
        self._role_re = re.compile("|".join(re.escape(t) for t in ROLE_TOKENS)) if self.role_tokens else None
        self._message_re = re.compile(
            "(" + "|".join(re.escape(t) for t in (PREFIX_TEXT, *ROLE_TOKENS)) + ")"
            if self.role_tokens
            else "(" + re.escape(PREFIX_TEXT) + ")"
        )
        for name in ("eos_token", "unk_token", "pad_token", "bos_token"):
            kwargs.pop(name, None)
        super(SentencePieceCore, self).__init__(
            padding_side=padding_side,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            encode_special_tokens=encode_special_tokens,
            role_tokens=role_tokens,
            eos_token="</s>",
            unk_token="<unk>",
            pad_token="<unk>",
            **kwargs,
        )

    # ----------------------------------------------------------------- vocabulary
    @property
    def vocab_size(self) -> int:
        return self.n_base + len(self.special_tokens)

    def get_vocab(self) -> dict[str, int]:
        vocab = {self.sp_model.IdToPiece(i): i for i in range(self.n_base)}
        vocab.update(self.special_tokens)
        return vocab

    def __len__(self) -> int:
        return self.vocab_size

    # ----------------------------------------------------------------- encoding
    def tokenize(self, text: str, **kwargs: Any) -> list[str]:
        """Pieces of ``text`` exactly as the official ``SPTokenizer.tokenize`` (no added-token trie)."""
        encode_special = kwargs.get("encode_special_tokens", self.encode_special_tokens)
        if not (encode_special and self._role_re is not None):
            return self.sp_model.EncodeAsPieces(text)
        pieces: list[str] = []
        last = 0
        for match in self._role_re.finditer(text):
            if last < match.start():
                pieces.extend(self.sp_model.EncodeAsPieces(text[last : match.start()]))
            pieces.append(match.group(0))
            last = match.end()
        if last < len(text):
            pieces.extend(self.sp_model.EncodeAsPieces(text[last:]))
        return pieces

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        return self.tokenize(text, **kwargs)

    def _convert_token_to_id(self, token: str) -> int:
        if token in self.special_tokens:
            return self.special_tokens[token]
        return self.sp_model.PieceToId(token)

    def _convert_token_to_id_with_added_voc(self, token: str) -> int:
        return self._convert_token_to_id(token)

    # ----------------------------------------------------------------- chat messages
    def build_single_message(self, role: str, metadata: str, message: str) -> list[int]:
        """``<|role|>`` + sp(metadata + "\\n") + sp(message): the official ChatGLM3 message encoding."""
        if not self.role_tokens:
            raise ValueError("ChatGLM2 has no role tokens; use the [Round N] prompt instead")
        if role not in ("system", "user", "assistant", "observation"):
            raise ValueError(f"unknown role {role!r}")
        return [
            self.special_tokens[f"<|{role}|>"],
            *self.sp_model.encode(f"{metadata}\n"),
            *self.sp_model.encode(message),
        ]

    @property
    def official_text_specials(self) -> bool:  # type: ignore[override]
        """ChatGLM2's official ``encode`` maps a ``sop`` piece to the special id; ChatGLM3's messages never are."""
        return not self.role_tokens

    def encode_plain(self, text: str) -> list[int]:
        return self.sp_model.encode(text)

    def _encode_rendered(self, text: str, plain: Callable[[str], str] | None = None) -> list[int]:
        """Ids of text rendered by our chat template: the inverse of ``build_single_message`` concatenation.

        ``[gMASK]sop`` and role tokens are special; after a role token the first line is the metadata. ``plain``:
        the chunks are guarded message text (see :meth:`GLMTokenizerBase._encode_rendered`).
        """
        if not self.role_tokens:  # ChatGLM2: a [Round N] text prompt after the prefix
            body = text[len(PREFIX_TEXT) :] if text.startswith(PREFIX_TEXT) else text
            if plain is None:
                return self.encode(body, add_special_tokens=True)
            return self.get_prefix_tokens() + super()._encode_rendered(body, plain)
        clean = plain or (lambda part: part)
        ids: list[int] = []
        role_pending = False
        for part in self._message_re.split(text):
            if part == PREFIX_TEXT:
                ids.extend(self.get_prefix_tokens())
                role_pending = False
            elif part in self.special_tokens:
                ids.append(self.special_tokens[part])
                role_pending = True
            elif part:
                if role_pending and "\n" in part:
                    meta, message = part.split("\n", 1)
                    ids.extend(self.sp_model.encode(clean(meta) + "\n"))
                    if message:
                        ids.extend(self.sp_model.encode(clean(message)))
                else:
                    ids.extend(self.sp_model.encode(clean(part)))
                role_pending = False
        return ids

    # ----------------------------------------------------------------- decoding
    def _convert_id_to_token(self, index: int) -> str:
        """The official ``SPTokenizer.convert_id_to_token``: ChatGLM3 names its special tokens, ChatGLM2 gives ''
        for them (and both for eos/bos/pad and negative ids); SentencePiece then drops '' pieces when joining."""
        if index in self.index_special_tokens:
            return self.index_special_tokens[index] if self.role_tokens else ""
        if index in (self.sp_model.eos_id(), self.sp_model.bos_id(), self.sp_model.unk_id()) or index < 0:
            return ""
        if index >= self.n_base:  # rows of the padded vocabulary (the official ChatGLM2 raised IndexError)
            return ""
        return self.sp_model.IdToPiece(index)

    def convert_ids_to_tokens(self, ids: int | Sequence[int], skip_special_tokens: bool = False) -> str | list[str]:
        if isinstance(ids, int):
            return self._convert_id_to_token(ids)
        return [self._convert_id_to_token(int(i)) for i in ids]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self.sp_model.DecodePieces(tokens)

    def _decode(
        self,
        token_ids: int | list[int],
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> str:
        """Official decode: the pieces of :meth:`_convert_id_to_token` joined by SentencePiece's ``DecodePieces``
        (which drops the dummy-prefix space of the first piece that has text: ChatGLM2's ``[gMASK] sop ▁你好`` is
        ``你好``, ChatGLM3's ``[gMASK]sop 你好``).

        ``skip_special_tokens`` is accepted and, as in the official tokenizers, does not drop ``[gMASK]``/``sop``/
        role names (they are not registered special tokens there); the ids it would drop decode to '' anyway.
        """
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        tokens = [self._convert_id_to_token(int(i)) for i in token_ids]
        text = self.sp_model.DecodePieces(tokens)
        clean = clean_up_tokenization_spaces if clean_up_tokenization_spaces is not None else False
        return self.clean_up_tokenization(text) if clean else text
