"""``tokenizer.json`` for native exports, so plain ``AutoTokenizer`` loads the tokenizer without remote code.

ChatGLM2/3: a byte-fallback BPE built from the SentencePiece pieces (merges from piece order), with SentencePiece's
normaliser (its precompiled map; blanks and controls mapped first, see :func:`_blank_steps`) and a dummy prefix on
every text segment (as the official per-message encoding has); GLM-4: byte-level BPE from the tiktoken ranks with the
GLM-4 split pattern. Specials follow the base vocabulary in the official order; ``[gMASK] sop`` is added by the
post-processor. Tests check the ids against the exact tokenizer on plain text (tests/unit/test_native_tokenizer.py)
and on chat templates.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from glmtune.families import Family


def _sentencepiece_tokenizer(tokenizer: Any) -> Tokenizer:
    from transformers.convert_slow_tokenizer import import_protobuf
    from transformers.tokenization_utils_base import generate_merges

    proto = import_protobuf().ModelProto()
    proto.ParseFromString(Path(tokenizer.vocab_file).read_bytes())
    vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    merges = generate_merges(vocab)
    # the official encode maps a piece spelled like a special token ("sop") to the special id: so does this vocab
    vocab.update(tokenizer.special_tokens)
    fast = Tokenizer(
        models.BPE(
            vocab,
            merges,
            unk_token=proto.trainer_spec.unk_piece,
            fuse_unk=True,
            byte_fallback=proto.trainer_spec.byte_fallback,
        )
    )
    # the dummy prefix goes first: the library prepends nothing to a segment left empty (SentencePiece writes "▁"
    # for a text its normaliser deleted); the map turns that "▁" into the space the last step turns back
    steps = [normalizers.Prepend("▁")] if proto.normalizer_spec.add_dummy_prefix else []
    if proto.normalizer_spec.precompiled_charsmap:
        steps += [normalizers.NFC(), *_blank_steps(tokenizer.sp_model)]
        steps.append(normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap))
    steps.append(normalizers.Replace(" ", "▁"))
    fast.normalizer = normalizers.Sequence(steps)
    fast.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    return fast


def _blank_steps(sp: Any) -> list[Any]:
    """Normalisers that map, before ``Precompiled``, every character SentencePiece's normaliser turns into a space
    (line breaks, tabs, no-break and ideographic spaces...) or deletes (control characters), as it does.

    The tokenizers library's ``Precompiled`` looks a grapheme cluster up as a whole and, when a shorter prefix of it
    is in the map, keeps only that prefix's mapping: ``\\r\\n`` became one space where SentencePiece writes two (a
    ``▁`` missing after a Windows line break), a no-break space swallowed a following zero-width joiner. Mapped
    first, these characters never start a cluster that ``Precompiled`` cuts. Derived from the model itself
    (SentencePiece's own ``normalize`` of each BMP character; combining marks are left to the map). The NFC step
    before them composes what the map composes anywhere (Hangul jamo, a letter and its accent), which
    ``Precompiled`` misses in clusters of 6 bytes or more. Left different: a compatibility character (``ﬁ``, ``①``,
    full-width letters) directly followed by a combining mark, where ``Precompiled`` drops the mark.
    """
    chars = [chr(c) for c in range(0x10000) if not 0xD800 <= c < 0xE000 and unicodedata.category(chr(c))[0] != "M"]
    classes: dict[str, list[str]] = {" ": [], "": []}
    for char, out in zip(chars, sp.normalize([f"x{c}x" for c in chars]), strict=True):
        out = out.replace("▁", " ")[2:-1]
        if out != char and out in classes:
            classes[out].append(char)
    return [
        normalizers.Replace(Regex("[" + "".join(f"\\x{{{ord(c):x}}}" for c in members) + "]"), target)
        for target, members in classes.items()
        if members
    ]


def _tiktoken_tokenizer(tokenizer: Any) -> Tokenizer:
    from transformers.convert_slow_tokenizer import TikTokenConverter

    from glmtune.tokenization.tiktoken_glm4 import GLM4_PATTERN

    conv = TikTokenConverter(vocab_file=tokenizer.vocab_file, pattern=GLM4_PATTERN)
    fast = conv.tokenizer()
    fast.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(GLM4_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    fast.decoder = decoders.ByteLevel()
    return fast


_MODELS = {"sentencepiece": _sentencepiece_tokenizer, "tiktoken": _tiktoken_tokenizer}


def build_fast_tokenizer(tokenizer: Any, family: Family) -> PreTrainedTokenizerFast:
    """A ``PreTrainedTokenizerFast`` equivalent to glmtune's exact ``tokenizer``, as the family's
    :attr:`~glmtune.families.Family.fast_tokenizer` describes it."""
    spec = family.fast_tokenizer
    if spec is None:
        raise ValueError(f"{family.title} has no tokenizer.json export")
    fast = _MODELS[spec.model](tokenizer)
    specials = sorted(tokenizer.special_tokens.items(), key=lambda kv: kv[1])
    # a special spelled as a word (ChatGLM2/3 `sop`, `eop`) only matches as a whole word: `people`, `isop` are text
    fast.add_special_tokens(
        [AddedToken(t, special=True, normalized=False, single_word=t.isalnum()) for t, _ in specials]
    )
    for token, index in specials:
        if fast.token_to_id(token) != index:
            raise ValueError(f"special token {token} got id {fast.token_to_id(token)}, expected {index}")
    (gmask, sop), eos = spec.prefix, spec.eos
    fast.post_processor = processors.TemplateProcessing(
        single=f"{gmask} {sop} $A",
        pair=f"{gmask} {sop} $A $B {eos}",
        special_tokens=[(gmask, fast.token_to_id(gmask)), (sop, fast.token_to_id(sop)), (eos, fast.token_to_id(eos))],
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=fast,
        eos_token=eos,
        pad_token=spec.pad,
        unk_token=spec.unk,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    wrapped.chat_template = spec.chat_template or getattr(tokenizer, "chat_template", None) or family.chat_template()
    return wrapped
