"""The native export's ``tokenizer.json`` (ChatGLM2/3) in plain transformers gives the official ids on plain text.

Official ``encode(text)`` (ChatGLM2/3 ``tokenization_chatglm.py``): ``[gMASK] sop`` + the SentencePiece ids of the
text, a piece spelled like a special token (``sop``) mapped to the special id. The exported file is loaded with
``AutoTokenizer`` (no glmtune code) and compared on Windows line breaks, blanks and controls SentencePiece's
``nmt_nfkc`` normaliser rewrites, the project's corpus, and random text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from glmtune.families import get_family
from glmtune.model.tiny import asset_path
from glmtune.tokenization import load_tokenizer
from glmtune.tokenization.fast_export import build_fast_tokenizer
from tests.conftest import fixtures_dir

TEXTS = [
    "windows\r\nnewline",
    "a\r\n\r\nb\r",
    "\r\n",
    "tab\there\x0bvt\x0cff\x1csep",
    "no\xa0break\u200dzwj\u3000ideographic\u2028line",
    "\x1c",
    " lead and trail ",
    "two  spaces   three",
    "ｆｕｌｌ ｗｉｄｔｈ １２３，！",
    "decomposed e\u0301 and 가 as jamo \u1100\u1161",
    "你好，世界！\n第二行",
    "emoji 😀👍🏽 and ▁ itself",
    "people, leopards and geopolitics; isopropyl, desopyramide",
]
PIECES = [
    *"ab 中文\r\n\t",
    "\r\n",
    "\xa0",
    "\u3000",
    "\u200d",
    "\x0b",
    "\x1c",
    "é",
    "😀",
    "，",
    "ｆ",
    "▁",
    "peop",
    "isop",
]


@pytest.fixture(scope="module", params=["chatglm3-fixture", "chatglm2-prep", "tiny"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    name = request.param
    if name == "chatglm3-fixture":
        tok = load_tokenizer(fixtures_dir("model", "chatglm3", "ckpt"), get_family("chatglm3"))
    elif name == "chatglm2-prep":
        tok = load_tokenizer(fixtures_dir("prep", "tokenizers", "chatglm2"), get_family("chatglm2"))
    else:
        directory = tmp_path_factory.mktemp("tok")
        (directory / "tokenizer.model").write_bytes(asset_path("chatglm_sp.model").read_bytes())
        tok = load_tokenizer(directory, get_family("chatglm3"))
    out = tmp_path_factory.mktemp(name) / "native"
    build_fast_tokenizer(tok, get_family(tok.glmtune_family)).save_pretrained(str(out))
    return tok, AutoTokenizer.from_pretrained(str(out))


def official_encode(tok: Any, text: str) -> list[int]:
    sp = tok.sp_model
    remap = {
        sp.PieceToId(name): i for name, i in tok.special_tokens.items() if sp.IdToPiece(sp.PieceToId(name)) == name
    }
    return [tok.get_command("[gMASK]"), tok.get_command("sop"), *(remap.get(i, i) for i in sp.encode(text))]


def test_windows_line_break(pair: tuple[Any, Any]) -> None:
    tok, plain = pair
    assert plain("windows\r\nnewline")["input_ids"] == official_encode(tok, "windows\r\nnewline")


@pytest.mark.parametrize("text", TEXTS)
def test_plain_text(pair: tuple[Any, Any], text: str) -> None:
    tok, plain = pair
    assert plain(text)["input_ids"] == official_encode(tok, text) == tok(text)["input_ids"]


def test_corpus(pair: tuple[Any, Any]) -> None:
    tok, plain = pair
    lines = [
        line
        for name in ("corpus.txt", "extra_text.txt")
        for line in Path(asset_path(name)).read_text(encoding="utf-8").splitlines()
    ][:400]
    assert [plain(t)["input_ids"] for t in lines] == [official_encode(tok, t) for t in lines]
    text = "\r\n".join(lines[:50])  # the same text with Windows line breaks
    assert plain(text)["input_ids"] == official_encode(tok, text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=12).map("".join))
def test_random_text(pair: tuple[Any, Any], text: str) -> None:
    tok, plain = pair
    assert plain(text)["input_ids"] == official_encode(tok, text)
