"""What every ChatGLM tokenizer shares: saving its vocabulary file, chat templates encoded like the official code,
and (ChatGLM2/3, GLM-4) the ``[gMASK] sop`` prefix with left padding of ids, masks and position ids."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from shutil import copyfile
from typing import Any

from transformers import PreTrainedTokenizer
from transformers.tokenization_utils_base import BatchEncoding, EncodedInput
from transformers.utils import PaddingStrategy

from glmtune.tokenization.textguard import encode_guarded


class GLMTokenizerBase(PreTrainedTokenizer):
    """Base of glmtune's exact tokenizers (``vocab_file`` is the original tokenizer file)."""

    vocab_files_names = {"vocab_file": "tokenizer.model"}
    model_input_names = ["input_ids", "attention_mask", "position_ids"]
    vocab_file: str

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        name = (filename_prefix + "-" if filename_prefix else "") + self.vocab_files_names["vocab_file"]
        out = os.path.join(save_directory, name) if os.path.isdir(save_directory) else save_directory
        if os.path.abspath(self.vocab_file) != os.path.abspath(out):
            copyfile(self.vocab_file, out)
        return (out,)

    official_text_specials: bool = True
    """Whether the official tokenizer turns special-token spellings in rendered chat text into control tokens
    (GLM-4, ChatGLM-6B, ChatGLM2's ``sop`` piece); ChatGLM3's official ``build_chat_input`` never did."""

    def special_spellings(self) -> list[str]:
        """The special-token spellings searched for in a chat template's text (and guarded in message text)."""
        return list(getattr(self, "special_tokens", {}))

    def encode_plain(self, text: str) -> list[int]:
        """Ids of ``text`` with every special-token spelling in it kept as text (no prefix tokens)."""
        raise NotImplementedError

    def _render_template(self, conversation: Any, *args: Any, **kwargs: Any) -> str | list[str]:
        """The chat template's text (transformers' Jinja rendering unless a family needs another)."""
        return super().apply_chat_template(conversation, *args, tokenize=False, **kwargs)

    def _encode_rendered(self, text: str, plain: Callable[[str], str] | None = None) -> list[int]:
        """Ids of a rendered chat template text, encoded message by message like the official code.

        ``plain`` given: the special spellings left in ``text`` are the template's own (message text is guarded,
        see ``textguard``), and each text chunk is ``plain(chunk)`` encoded with :meth:`encode_plain`. ``None``:
        the official tokenization of the whole text (spellings inside messages become control tokens too).
        """
        if plain is None:
            return self.encode(text, add_special_tokens=False)
        ids: list[int] = []
        spellings = self.special_spellings()
        for i, part in enumerate(_split(text, spellings)):
            if i % 2:  # a spelling the template wrote
                ids.append(self.convert_tokens_to_ids(part))
            elif part:
                ids.extend(self.encode_plain(plain(part)))
        return ids

    def apply_chat_template(
        self,
        conversation: Any,
        *args: Any,
        tokenize: bool = True,
        compat_official_specials: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Render the template and encode it with the official per-message ids.

        Message text is text: a special-token spelling inside a message (``<|user|>``, ``[gMASK]``...) is
        encoded as the characters it is. ``compat_official_specials=True`` reproduces the official tokenizers that
        turn such spellings into control tokens (GLM-4, ChatGLM-6B, ChatGLM2's ``sop`` piece; ChatGLM3 never did).
        """
        return_dict = kwargs.pop("return_dict", False)
        return_tensors = kwargs.pop("return_tensors", None)
        extra = {k: kwargs.pop(k) for k in ("tools", "documents") if k in kwargs}  # text the template writes too

        def render(bundle: tuple[Any, dict[str, Any]]) -> str | list[str]:
            return self._render_template(bundle[0], *args, **kwargs, **bundle[1])

        if not tokenize:
            return render((conversation, extra))
        if compat_official_specials and self.official_text_specials:
            text = render((conversation, extra))
            ids = [self._encode_rendered(t) for t in (text if isinstance(text, list) else [text])]
        else:
            text, ids = encode_guarded(render, (conversation, extra), self.special_spellings(), self._encode_rendered)
        batched = isinstance(text, list)
        if not return_dict and return_tensors is None:
            return ids if batched else ids[0]
        out = self.pad({"input_ids": ids}, return_tensors=return_tensors)
        if not return_dict:
            return out["input_ids"]
        if not batched and return_tensors is None:
            return BatchEncoding({k: v[0] for k, v in out.items()})
        return out


def _split(text: str, spellings: list[str]) -> list[str]:
    """``text`` split into the given spellings (kept as parts, longest first) and the text between them."""
    if not spellings:
        return [text]
    ordered = sorted(spellings, key=len, reverse=True)
    return re.split("(" + "|".join(re.escape(s) for s in ordered) + ")", text)


class PrefixTokenizerMixin:
    """``[gMASK] sop`` + ids (+ pair + eos), the official ChatGLM2/3 and GLM-4 special-token layout."""

    pad_token_id: int
    eos_token_id: int
    index_special_tokens: dict[int, str]
    model_input_names: list[str]

    def get_prefix_tokens(self) -> list[int]:
        raise NotImplementedError

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        ids = self.get_prefix_tokens() + list(token_ids_0)
        if token_ids_1 is not None:
            ids = ids + list(token_ids_1) + [self.eos_token_id]
        return ids

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        if already_has_special_tokens:
            return [1 if t in self.index_special_tokens else 0 for t in token_ids_0]
        mask = [1, 1] + [0] * len(token_ids_0)
        if token_ids_1 is not None:
            mask += [0] * len(token_ids_1) + [1]
        return mask

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 3 if pair else 2

    def _pad(
        self,
        encoded_inputs: dict[str, EncodedInput] | BatchEncoding,
        max_length: int | None = None,
        padding_strategy: PaddingStrategy = PaddingStrategy.DO_NOT_PAD,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
    ) -> dict:
        """The official ``_pad``: left padding of ids, attention mask and position ids."""
        key = self.model_input_names[0]
        required = encoded_inputs[key]
        seq_length = len(required)
        if padding_strategy == PaddingStrategy.LONGEST:
            max_length = seq_length
        if max_length is not None and pad_to_multiple_of is not None and max_length % pad_to_multiple_of != 0:
            max_length = (max_length // pad_to_multiple_of + 1) * pad_to_multiple_of
        if "attention_mask" not in encoded_inputs:
            encoded_inputs["attention_mask"] = [1] * seq_length
        if "position_ids" not in encoded_inputs:
            encoded_inputs["position_ids"] = list(range(seq_length))
        if padding_strategy != PaddingStrategy.DO_NOT_PAD and max_length is not None and seq_length != max_length:
            diff = max_length - seq_length
            encoded_inputs["attention_mask"] = [0] * diff + list(encoded_inputs["attention_mask"])
            encoded_inputs["position_ids"] = [0] * diff + list(encoded_inputs["position_ids"])
            encoded_inputs[key] = [self.pad_token_id] * diff + list(required)
        return encoded_inputs
