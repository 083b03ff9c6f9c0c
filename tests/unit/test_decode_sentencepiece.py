"""ChatGLM2 / ChatGLM3 ``decode`` against the rules of the official ``tokenization_chatglm.py``.

Official (both): ``_convert_id_to_token`` = ``SPTokenizer.convert_id_to_token`` and ``convert_tokens_to_string`` =
``sp_model.DecodePieces``; ``decode`` is transformers' join of those pieces (no clean-up: the tokenizer sets
``clean_up_tokenization_spaces=False``).
- ChatGLM2: ``[MASK] [gMASK] [sMASK] sop eop`` and eos/bos/pad (and negative ids) are '';
- ChatGLM3: its special tokens are their names; eos/bos/pad '' (ids past the tokenizer: '').
Ours differs only on the padded-vocab rows, where the official ChatGLM2 raised ``IndexError`` (ours: '').
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glmtune.families import get_family
from glmtune.model.tiny import make_tiny
from glmtune.tokenization import load_tokenizer
from tests.conftest import fixtures_dir

CHATGLM2_SPECIALS = ("[MASK]", "[gMASK]", "[sMASK]", "sop", "eop")
ROLES = ("<|system|>", "<|user|>", "<|assistant|>", "<|observation|>")


@pytest.fixture(scope="module")
def toks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = {
        "chatglm2-prep": load_tokenizer(fixtures_dir("prep", "tokenizers", "chatglm2"), get_family("chatglm2")),
    }
    for name in ("chatglm2", "chatglm3", "chatglm3-32k"):
        out[name] = load_tokenizer(make_tiny(name, tmp_path_factory.mktemp(name) / "ckpt"), get_family(name))
    return out


def official_piece(tok: Any, index: int, chatglm3: bool) -> str:
    """``SPTokenizer.convert_id_to_token`` of the official code (n = SentencePiece size, specials after it)."""
    sp = tok.sp_model
    n = sp.vocab_size()
    names = CHATGLM2_SPECIALS + (ROLES if chatglm3 else ())
    if n <= index < n + len(names):
        return names[index - n] if chatglm3 else ""
    if index in (sp.eos_id(), sp.bos_id(), sp.unk_id()) or index < 0 or index >= n:
        return ""
    return sp.IdToPiece(index)


def official_decode(tok: Any, ids: list[int], chatglm3: bool) -> str:
    return tok.sp_model.DecodePieces([official_piece(tok, i, chatglm3) for i in ids])


def test_chatglm2_specials_are_empty_and_the_dummy_space_goes(toks: dict[str, Any]) -> None:
    for name in ("chatglm2", "chatglm2-prep"):
        tok = toks[name]
        gmask, sop = tok.get_command("[gMASK]"), tok.get_command("sop")
        hello = tok.encode("你好", add_special_tokens=False)
        assert tok.decode([gmask, sop, *hello]) == "你好"
        assert tok.decode(tok.encode("你好")) == "你好"
        assert tok.decode([gmask]) == tok.decode([sop, tok.eos_token_id]) == ""
        assert tok.convert_ids_to_tokens([gmask, sop]) == ["", ""]
        space = tok.sp_model.PieceToId("▁")
        assert [tok.decode([space] * k) for k in (1, 2, 3)] == ["", " ", "  "]
        assert tok.decode([gmask, sop, space, space, *hello]) == official_decode(tok, [space, space, *hello], False)


@pytest.mark.parametrize("name", ["chatglm2", "chatglm2-prep", "chatglm3", "chatglm3-32k"])
def test_every_id_decodes_as_the_official_code(toks: dict[str, Any], name: str) -> None:
    tok = toks[name]
    chatglm3 = name.startswith("chatglm3")
    base = tok.sp_model.vocab_size()
    every = list(range(base + len(tok.special_tokens)))
    assert tok.convert_ids_to_tokens(every) == [official_piece(tok, i, chatglm3) for i in every]
    for index in [*range(16), *range(16, base, 53), *range(base - 2, len(every))]:
        want = official_decode(tok, [index], chatglm3)
        assert tok.decode([index]) == tok.decode([index], skip_special_tokens=True) == want, index


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_sequences_decode_as_the_official_code(toks: dict[str, Any], data: st.DataObject) -> None:
    for name, chatglm3 in (("chatglm2", False), ("chatglm3-32k", True)):
        tok = toks[name]
        n = tok.sp_model.vocab_size()
        specials = list(tok.special_tokens.values())
        space = tok.sp_model.PieceToId("▁")
        pick = st.one_of(st.integers(0, n - 1), st.sampled_from([*specials, space, 0, 1, 2]))
        ids = data.draw(st.lists(pick, max_size=12))
        assert tok.decode(ids) == official_decode(tok, ids, chatglm3), (name, ids)


def test_padded_vocab_rows_decode_to_nothing(toks: dict[str, Any], tmp_path: Path) -> None:
    tok = toks["chatglm2"]
    row = len(tok) + 3  # an embedding row past the tokenizer (the official ChatGLM2 raised IndexError)
    hello = tok.encode("你好", add_special_tokens=False)
    assert tok.decode([*hello, row]) == "你好"
