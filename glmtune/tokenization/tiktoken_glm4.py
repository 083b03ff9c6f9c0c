"""Exact GLM-4 tokenizer: tiktoken byte-level BPE from ``tokenizer.model`` (``base64 rank`` lines) plus specials.

Reimplements the official GLM-4-9B ``ChatGLM4Tokenizer`` as a transformers tokenizer, without checkpoint code.
Kept from the official code: special tokens written in text are recognised by ``encode``/``__call__`` (as every
HF tokenizer does; chat rendering keeps message text as text, ``apply_chat_template(compat_official_specials=True)``
gives the official ids), and ``decode`` joins special tokens with spaces. Fixed by default
(``compat_official_decode=True`` restores it): ids of the padded-vocab rows used to make the official decoder emit
the preceding text twice.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from typing import Any

import tiktoken

from glmtune.families.glm4 import GLM4
from glmtune.tokenization.base import GLMTokenizerBase, PrefixTokenizerMixin

GLM4_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
GLM4_SPECIAL_TOKENS = GLM4.special_tokens  # declared once, in the family
ROLES = ("system", "user", "assistant", "observation")


def read_ranks(path: str) -> dict[bytes, int]:
    """Parse a tiktoken rank file (one ``base64-token rank`` pair per line)."""
    ranks: dict[bytes, int] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                token, rank = line.split()
                ranks[base64.b64decode(token)] = int(rank)
    return ranks


class GLM4Tokenizer(PrefixTokenizerMixin, GLMTokenizerBase):
    """Tokenizer of GLM-4-9B (chat and base)."""

    def __init__(
        self,
        vocab_file: str,
        padding_side: str = "left",
        clean_up_tokenization_spaces: bool = False,
        compat_official_decode: bool = False,
        **kwargs: Any,
    ) -> None:
        self.vocab_file = vocab_file
        self.mergeable_ranks = read_ranks(vocab_file)
        self.decoder = {rank: token for token, rank in self.mergeable_ranks.items()}
        self.n_base = len(self.decoder)
        self.encoding = tiktoken.Encoding(
            name="glm4", pat_str=GLM4_PATTERN, mergeable_ranks=self.mergeable_ranks, special_tokens={}
        )
        self.compat_official_decode = compat_official_decode
        self.special_tokens = {tok: self.n_base + i for i, tok in enumerate(GLM4_SPECIAL_TOKENS)}
        self.index_special_tokens = {i: t for t, i in self.special_tokens.items()}
        ordered = sorted(GLM4_SPECIAL_TOKENS, key=len, reverse=True)
        self._special_re = re.compile("(" + "|".join(re.escape(t) for t in ordered) + ")")
        for name in ("eos_token", "pad_token", "unk_token", "bos_token", "additional_special_tokens"):
            kwargs.pop(name, None)
        kwargs.pop("added_tokens_decoder", None)
        kwargs.pop("extra_special_tokens", None)
        super().__init__(
            padding_side=padding_side,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            compat_official_decode=compat_official_decode,
            eos_token="<|endoftext|>",
            pad_token="<|endoftext|>",
            **kwargs,
        )

    # ----------------------------------------------------------------- vocabulary
    @property
    def vocab_size(self) -> int:
        return self.n_base

    def __len__(self) -> int:
        return self.n_base + len(self.special_tokens)

    def get_vocab(self) -> dict[str, int]:
        vocab = {self.decoder[i].decode("latin-1"): i for i in range(self.n_base)}
        vocab.update(self.special_tokens)
        return vocab

    @property
    def all_special_ids(self) -> list[int]:  # type: ignore[override]
        return list(self.index_special_tokens)

    @property
    def eos_token_id(self) -> int:  # type: ignore[override]
        return self.special_tokens["<|endoftext|>"]

    @property
    def pad_token_id(self) -> int:  # type: ignore[override]
        return self.special_tokens["<|endoftext|>"]

    def get_command(self, token: str) -> int:
        """Id of a special token by name (``[gMASK]``, ``<sop>``, ``<|user|>``...)."""
        if token not in self.special_tokens:
            raise KeyError(f"{token} is not a special token of this tokenizer")
        return self.special_tokens[token]

    # ----------------------------------------------------------------- encoding
    def tokenize(self, text: str, **kwargs: Any) -> list[str | bytes]:  # type: ignore[override]
        """Byte tokens of ``text``; special tokens written in text are split out first (official behaviour)."""
        if kwargs.get("split_special_tokens", self.split_special_tokens):
            return [self.decoder[i] for i in self.encoding.encode_ordinary(text)]
        out: list[str | bytes] = []
        for part in self._special_re.split(text):
            if not part:
                continue
            if part in self.special_tokens:
                out.append(part)
            else:
                out.extend(self.decoder[i] for i in self.encoding.encode_ordinary(part))
        return out

    def _tokenize(self, text: str, **kwargs: Any) -> list[bytes]:
        return [self.decoder[i] for i in self.encoding.encode_ordinary(text)]

    def _convert_token_to_id(self, token: str | bytes) -> int:
        if isinstance(token, str):
            if token in self.special_tokens:
                return self.special_tokens[token]
            token = token.encode("latin-1")
        return self.mergeable_ranks[token]

    def _convert_token_to_id_with_added_voc(self, token: str | bytes) -> int:
        return self._convert_token_to_id(token)

    def encode_text(self, text: str) -> list[int]:
        """Ids of ``text`` with every special-token spelling treated as text."""
        return self.encoding.encode_ordinary(text)

    encode_plain = encode_text

    def get_prefix_tokens(self) -> list[int]:
        return [self.special_tokens["[gMASK]"], self.special_tokens["<sop>"]]

    def _render_template(self, conversation: Any, *args: Any, **kwargs: Any) -> str | list[str]:
        """The official template rendered as under transformers 4.40 (jinja's tojson, trim/lstrip blocks)."""
        add = bool(kwargs.get("add_generation_prompt", False))
        template = kwargs.get("chat_template") or self.chat_template
        batched = bool(conversation) and isinstance(conversation[0], (list, tuple))
        texts = [GLM4.render_text(list(c), add, template) for c in (conversation if batched else [conversation])]
        return texts if batched else texts[0]

    def build_single_message(self, role: str, metadata: str, message: str) -> list[int]:
        """``<|role|>`` + bpe(metadata + "\\n") + bpe(message), special spellings in text kept as text."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        return [
            self.special_tokens[f"<|{role}|>"],
            *self.encoding.encode_ordinary(f"{metadata}\n"),
            *self.encoding.encode_ordinary(message),
        ]

    # ----------------------------------------------------------------- decoding
    def _convert_id_to_token(self, index: int) -> str | bytes:
        if index in self.index_special_tokens:
            return self.index_special_tokens[index]
        return self.decoder.get(index, "")

    def convert_ids_to_tokens(self, ids: int | Iterable[int], skip_special_tokens: bool = False):  # type: ignore[override]
        if isinstance(ids, int):
            return self._convert_id_to_token(ids)
        return [
            self._convert_id_to_token(int(i))
            for i in ids
            if not (skip_special_tokens and int(i) in self.index_special_tokens)
        ]

    def convert_tokens_to_string(self, tokens: list[str | bytes]) -> str:
        text, buffer = "", b""
        for token in tokens:
            if isinstance(token, int):
                token = chr(token)
            if isinstance(token, bytes):
                buffer += token
            elif isinstance(token, str):
                if buffer:
                    text += buffer.decode("utf-8", errors="replace")
                    if not self.compat_official_decode:
                        buffer = b""
                if not self.compat_official_decode:
                    text += token
            else:
                raise TypeError("token should be bytes or str")
        if buffer:
            text += buffer.decode("utf-8", errors="replace")
        return text

    def _decode(
        self,
        token_ids: int | list[int],
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        spaces_between_special_tokens: bool = True,
        **kwargs: Any,
    ) -> str:
        """Official decode: special tokens are separate pieces joined with spaces; bytes decoded as UTF-8."""
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        pieces: list[str] = []
        current: list[str | bytes] = []
        for index in token_ids:
            index = int(index)
            if index in self.index_special_tokens:
                if skip_special_tokens:
                    continue
                if current:
                    string = self.convert_tokens_to_string(current)
                    if string:
                        pieces.append(string)
                    current = []
                pieces.append(self.index_special_tokens[index])
            else:
                current.append(self._convert_id_to_token(index))
        if current:
            pieces.append(self.convert_tokens_to_string(current))
        text = (" " if spaces_between_special_tokens else "").join(pieces)
        if clean_up_tokenization_spaces:
            text = self.clean_up_tokenization(text)
        return text
