"""Exact ChatGLM-6B (v1) tokenizer: ``ice_text.model`` SentencePiece with the official text preprocessing.

Reimplements what the official ``tokenization_chatglm.py`` computes under transformers 4.27, as a transformers
``PythonBackend`` tokenizer, without running any checkpoint code:

- text: ``\\n`` -> ``<n>``, ``\\t`` -> ``<|tab|>``, runs of 2..80 spaces -> ``<|blank_N|>`` (a longer run becomes
  ``<|blank_80|>`` pieces plus the rest), then SentencePiece (NFKC, dummy prefix); ids are offset by
  ``num_image_tokens`` (0 in the final official revision, 20000 before it).
- the HF special tokens (``<sop> <eop> <unk> <pad> [MASK]``) written in text are split out as transformers 4.27 did,
  stripping the whitespace on both sides; ``[gMASK]``, ``[sMASK]``, ``</s>`` in text stay characters.
- ``encode`` appends ``[gMASK] <sop>`` at the END; a pair is ``a [gMASK] <sop> b <eop>``.
- padding is on the left and builds the ``[1, T, T]`` bool attention mask (True = masked) and ``[2, T]`` 2D
  position ids, but only when padding or a ``max_length`` is requested (else ``input_ids`` only).
- decode drops pad ids, renders control pieces as '', ``<unk>`` as `` ⁇ ``, restores ``<n>``/tabs/blanks and cleans
  up tokenization spaces by default.
Changed on purpose: an id past the vocabulary raises ``IndexError`` with a message naming the id and the vocabulary
size (official: sentencepiece's bare ``OUT_OF_RANGE``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from sentencepiece import SentencePieceProcessor
from transformers.tokenization_utils_base import BatchEncoding, EncodedInput
from transformers.utils import PaddingStrategy

from glmtune.tokenization.base import GLMTokenizerBase

COMMAND_TOKENS = ("[MASK]", "[gMASK]", "[sMASK]", "<unused_0>", "<sop>", "<eop>", "<ENC>", "<dBLOCK>")
_IMAGE_RE = re.compile(r"<image_(\d+)>")
_PREFIX_TEXT = "[gMASK]<sop>"  # how the family chat template writes the suffix encode() appends


class ChatGLMv1Tokenizer(GLMTokenizerBase):
    """Tokenizer of ChatGLM-6B (``THUDM/chatglm-6b``), id for id and string for string with the official one."""

    vocab_files_names = {"vocab_file": "ice_text.model"}
    model_input_names = ["input_ids", "attention_mask", "position_ids"]

    def __init__(
        self,
        vocab_file: str,
        num_image_tokens: int = 20000,
        padding_side: str = "left",
        do_lower_case: bool = False,
        remove_space: bool = False,
        max_blank_length: int = 80,
        bos_token: str = "<sop>",
        eos_token: str = "<eop>",
        end_token: str = "</s>",
        mask_token: str = "[MASK]",
        gmask_token: str = "[gMASK]",
        pad_token: str = "<pad>",
        unk_token: str = "<unk>",
        clean_up_tokenization_spaces: bool = True,
        **kwargs: Any,
    ) -> None:
        if padding_side != "left":
            raise ValueError("ChatGLM-6B pads on the left (its 2D positions assume it); padding_side must be 'left'")
        self.vocab_file = vocab_file
        self.sp_model = SentencePieceProcessor(model_file=vocab_file)
        self.num_image_tokens = int(num_image_tokens)
        self.n_text = self.sp_model.vocab_size()
        self.max_blank_length = int(max_blank_length)
        self.do_lower_case = do_lower_case
        self.remove_space = remove_space
        # not HF special tokens (the official tokenizer did not register them): kept as plain attributes
        self.gmask_token = gmask_token
        self.end_token = end_token
        self._blank_re = re.compile(" {2,}")
        for name in ("name_or_path", "tokenizer_class", "auto_map"):
            kwargs.pop(name, None)
        super().__init__(
            padding_side=padding_side,
            bos_token=bos_token,
            eos_token=eos_token,
            unk_token=unk_token,
            pad_token=pad_token,
            mask_token=mask_token,
            clean_up_tokenization_spaces=clean_up_tokenization_spaces,
            num_image_tokens=self.num_image_tokens,
            do_lower_case=do_lower_case,
            remove_space=remove_space,
            **kwargs,
        )
        self._specials = list(dict.fromkeys(str(t) for t in (bos_token, eos_token, unk_token, pad_token, mask_token)))
        self._special_re = re.compile("(" + "|".join(re.escape(t) for t in self._specials) + ")")

    # ----------------------------------------------------------------- vocabulary
    @property
    def vocab_size(self) -> int:
        return self.num_image_tokens + self.n_text

    def __len__(self) -> int:
        return self.vocab_size

    def get_vocab(self) -> dict[str, int]:
        return {self._convert_id_to_token(i): i for i in range(self.vocab_size)}

    def _piece_id(self, piece: str) -> int:
        return self.sp_model.PieceToId(piece) + self.num_image_tokens

    def get_command(self, token: str) -> int:
        """Id of a control token by its official name (``[MASK] [gMASK] [sMASK] <sop> <eop>``, ``<pad>``...)."""
        known = (*COMMAND_TOKENS, "<unk>", "<s>", "</s>", "<pad>", "<n>", "<|tab|>")
        if token not in known:
            raise KeyError(f"{token} is not a command token of the ChatGLM-6B tokenizer")
        return self._piece_id(token)

    @property
    def bos_token_id(self) -> int:  # type: ignore[override]
        return self._piece_id(str(self.bos_token))

    @property
    def eos_token_id(self) -> int:  # type: ignore[override]
        return self._piece_id(str(self.eos_token))

    @property
    def pad_token_id(self) -> int:  # type: ignore[override]
        return self._piece_id(str(self.pad_token))

    @property
    def unk_token_id(self) -> int:  # type: ignore[override]
        return self._piece_id(str(self.unk_token))

    @property
    def mask_token_id(self) -> int:  # type: ignore[override]
        return self._piece_id(str(self.mask_token))

    @property
    def gmask_token_id(self) -> int:
        return self._piece_id(self.gmask_token)

    @property
    def end_token_id(self) -> int:
        return self._piece_id(self.end_token)

    # ----------------------------------------------------------------- encoding
    def _preprocess(self, text: str) -> str:
        """The official ``SPTokenizer._preprocess``: newlines, tabs and blank runs become their pieces."""
        text = text.replace("\n", "<n>").replace("\t", "<|tab|>")
        top = self.max_blank_length

        def blanks(match: re.Match[str]) -> str:
            full, rest = divmod(len(match.group(0)), top)
            return f"<|blank_{top}|>" * full + (f"<|blank_{rest}|>" if rest >= 2 else " " * rest)

        return self._blank_re.sub(blanks, text)

    def _clean_text(self, text: str) -> str:
        if self.remove_space:
            text = " ".join(text.strip().split())
        return text.lower() if self.do_lower_case else text

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        return self.sp_model.EncodeAsPieces(self._preprocess(self._clean_text(text)))

    def tokenize(self, text: str, **kwargs: Any) -> list[str]:
        """Pieces as transformers 4.27 + the official tokenizer produce them (special tokens split, blanks stripped)."""
        if kwargs.get("split_special_tokens", self.split_special_tokens):
            return self._tokenize(text)
        chunks = [c for c in self._special_re.split(text) if c]
        is_special = [bool(self._special_re.fullmatch(c)) for c in chunks]
        if self.do_lower_case:
            chunks = [c if s else c.lower() for c, s in zip(chunks, is_special, strict=True)]
        for i, special in enumerate(is_special):
            if not special:
                continue
            if i + 1 < len(chunks) and chunks[i + 1]:
                chunks[i + 1] = chunks[i + 1].lstrip()
            if i > 0 and chunks[i - 1]:
                chunks[i - 1] = chunks[i - 1].rstrip()
        pieces: list[str] = []
        for chunk, special in zip(chunks, is_special, strict=True):
            if not chunk:
                continue
            pieces.extend([chunk] if special else self._tokenize(chunk))
        return pieces

    def _convert_token_to_id(self, token: str) -> int:
        match = _IMAGE_RE.fullmatch(token)
        if match:
            return int(match.group(1))
        return self._piece_id(token)

    def _convert_token_to_id_with_added_voc(self, token: str) -> int:
        return self._convert_token_to_id(token)

    def encode_text(self, text: str, add_dummy_prefix: bool = True) -> list[int]:
        """Ids of ``text`` with no special-token handling: the official ``tokenizer.sp_tokenizer.encode``."""
        text = self._preprocess(text)
        if not add_dummy_prefix:
            text = "<n>" + text
        ids = [i + self.num_image_tokens for i in self.sp_model.EncodeAsIds(text)]
        return ids if add_dummy_prefix else ids[2:]

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        ids = [*token_ids_0, self.gmask_token_id, self.bos_token_id]
        if token_ids_1 is not None:
            ids = [*ids, *token_ids_1, self.eos_token_id]
        return ids

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        if already_has_special_tokens:
            specials = {self.gmask_token_id, *self.all_special_ids}
            return [1 if int(t) in specials else 0 for t in token_ids_0]
        mask = [0] * len(token_ids_0) + [1, 1]
        if token_ids_1 is not None:
            mask += [0] * len(token_ids_1) + [1]
        return mask

    def special_spellings(self) -> list[str]:
        return list(self._specials)

    def encode_plain(self, text: str) -> list[int]:
        """Ids ``encode`` gives ``text`` when no special token is split out (preprocessing included)."""
        return [self._convert_token_to_id(p) for p in self._tokenize(text)]

    def _encode_rendered(self, text: str, plain: Callable[[str], str] | None = None) -> list[int]:
        body, suffix = (text[: -len(_PREFIX_TEXT)], True) if text.endswith(_PREFIX_TEXT) else (text, False)
        if plain is None:
            return self.encode(body, add_special_tokens=suffix)
        ids = super()._encode_rendered(body, plain)
        return self.build_inputs_with_special_tokens(ids) if suffix else ids

    # ----------------------------------------------------------------- decoding
    def _convert_id_to_token(self, index: int) -> str:
        index = int(index)
        if index < self.num_image_tokens:
            return f"<image_{index}>"
        piece = index - self.num_image_tokens
        if piece >= self.n_text:
            raise IndexError(
                f"token id {index} is out of range: the ChatGLM-6B tokenizer has {self.vocab_size} ids "
                f"(0..{self.vocab_size - 1}); ids of the padded embedding rows have no text"
            )
        return self.sp_model.IdToPiece(piece)

    def convert_ids_to_tokens(self, ids: int | Sequence[int], skip_special_tokens: bool = False) -> str | list[str]:
        if isinstance(ids, (int, np.integer)):
            return self._convert_id_to_token(int(ids))
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._convert_id_to_token(int(i)) for i in ids if int(i) not in skip]

    def _postprocess(self, text: str) -> str:
        text = text.replace("<n>", "\n").replace("<|tab|>", "\t")
        for n in range(2, self.max_blank_length + 1):
            text = text.replace(f"<|blank_{n}|>", " " * n)
        return text

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self._postprocess(self.sp_model.DecodePieces(list(tokens)))

    def _decode(
        self,
        token_ids: int | list[int],
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs: Any,
    ) -> str:
        """Official decode: pad ids removed, pieces joined by SentencePiece, then the spaces clean-up."""
        ids = [int(token_ids)] if isinstance(token_ids, (int, np.integer)) else [int(i) for i in token_ids]
        pad = self.pad_token_id
        tokens = self.convert_ids_to_tokens([i for i in ids if i != pad], skip_special_tokens=skip_special_tokens)
        text = self.convert_tokens_to_string(tokens) if tokens else ""
        clean = clean_up_tokenization_spaces
        if clean is None:
            clean = self.clean_up_tokenization_spaces
        return self.clean_up_tokenization(text) if clean else text

    def clean_up_tokenization(self, text: str) -> str:
        for old, new in (
            (" .", "."),
            (" ?", "?"),
            (" !", "!"),
            (" ,", ","),
            (" ' ", "'"),
            (" n't", "n't"),
            (" 'm", "'m"),
            (" 's", "'s"),
            (" 've", "'ve"),
            (" 're", "'re"),
        ):
            text = text.replace(old, new)
        return text

    # ----------------------------------------------------------------- padding
    def pad(self, encoded_inputs: Any, *args: Any, **kwargs: Any) -> BatchEncoding:
        """transformers' ``pad``, except that already built [1, T, T] masks are padded (as 4.27 did) instead of
        being set aside and stacked unpadded."""
        if isinstance(encoded_inputs, (list, tuple)) and encoded_inputs and isinstance(encoded_inputs[0], Mapping):
            encoded_inputs = {key: [row[key] for row in encoded_inputs] for key in encoded_inputs[0]}
        mask = encoded_inputs.get("attention_mask") if isinstance(encoded_inputs, Mapping) else None
        if isinstance(mask, list) and mask and getattr(mask[0], "ndim", 0) > 1:
            encoded_inputs = dict(encoded_inputs)
            encoded_inputs["attention_mask"] = [np.asarray(m).tolist() for m in mask]
        return super().pad(encoded_inputs, *args, **kwargs)

    def _pad(
        self,
        encoded_inputs: dict[str, EncodedInput] | BatchEncoding,
        max_length: int | None = None,
        padding_strategy: PaddingStrategy = PaddingStrategy.DO_NOT_PAD,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
    ) -> dict:
        """The official ``_pad``: masks/positions built per row before left padding, when a length is known."""
        if (padding_side or self.padding_side) != "left":
            raise ValueError("ChatGLM-6B pads on the left; padding_side='right' is not supported")
        key = self.model_input_names[0]
        required = list(encoded_inputs[key])
        seq_length = len(required)
        if padding_strategy == PaddingStrategy.LONGEST:
            max_length = seq_length
        if max_length is not None and pad_to_multiple_of is not None and max_length % pad_to_multiple_of != 0:
            max_length = (max_length // pad_to_multiple_of + 1) * pad_to_multiple_of
        needs_padding = padding_strategy != PaddingStrategy.DO_NOT_PAD and seq_length != max_length
        if max_length is not None:
            bos = self.bos_token_id
            context = required.index(bos) if bos in required else seq_length
            if "attention_mask" not in encoded_inputs:
                mask = np.tril(np.ones((1, seq_length, seq_length)))
                mask[:, :, :context] = 1
                encoded_inputs["attention_mask"] = np.bool_(mask < 0.5)
            if "position_ids" not in encoded_inputs:
                encoded_inputs["position_ids"] = _position_ids(
                    required, context, self.mask_token_id, self.gmask_token_id
                )
        if needs_padding:
            diff = max_length - seq_length
            if "attention_mask" in encoded_inputs:
                encoded_inputs["attention_mask"] = np.pad(
                    encoded_inputs["attention_mask"],
                    pad_width=[(0, 0), (diff, 0), (diff, 0)],
                    mode="constant",
                    constant_values=True,
                )
            if "token_type_ids" in encoded_inputs:
                encoded_inputs["token_type_ids"] = [self.pad_token_type_id] * diff + list(
                    encoded_inputs["token_type_ids"]
                )
            if "special_tokens_mask" in encoded_inputs:
                encoded_inputs["special_tokens_mask"] = [1] * diff + list(encoded_inputs["special_tokens_mask"])
            if "position_ids" in encoded_inputs:
                encoded_inputs["position_ids"] = np.pad(encoded_inputs["position_ids"], pad_width=[(0, 0), (diff, 0)])
            encoded_inputs[key] = [self.pad_token_id] * diff + required
        return encoded_inputs


def _position_ids(ids: list[int], context: int, mask_id: int, gmask_id: int) -> np.ndarray:
    """[2, T]: positions (after the context, the [MASK] index, else the [gMASK] one) and block positions."""
    n = len(ids)
    positions = np.arange(n, dtype=np.int64)
    mask_token = mask_id if mask_id in ids else gmask_id
    if mask_token in ids:
        positions[context:] = ids.index(mask_token)
    block = np.concatenate([np.zeros(context, dtype=np.int64), np.arange(1, n - context + 1, dtype=np.int64)])
    return np.stack([positions, block], axis=0)
