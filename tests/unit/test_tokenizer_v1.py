"""ChatGLM-6B (v1) tokenizer behaviours beyond the recorded cases (the official rules, applied to new inputs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from glmtune.families.chatglm import CHATGLM
from glmtune.tokenization import load_tokenizer
from glmtune.tokenization.icetext_v1 import ChatGLMv1Tokenizer
from tests.conftest import fixtures_dir

VOCAB = fixtures_dir("model-v1", "ckpt") / "ice_text.model"


@pytest.fixture(scope="module")
def tok() -> ChatGLMv1Tokenizer:
    return ChatGLMv1Tokenizer(str(VOCAB), num_image_tokens=0)


@pytest.mark.parametrize(
    ("spaces", "pieces"),
    [
        (2, ["<|blank_2|>"]),
        (80, ["<|blank_80|>"]),
        (81, ["<|blank_80|>", "▁"]),
        (163, ["<|blank_80|>", "<|blank_80|>", "<|blank_3|>"]),
    ],
)
def test_blank_runs(tok: ChatGLMv1Tokenizer, spaces: int, pieces: list[str]) -> None:
    """Longest blank first, as the official loop replacing 80..2 spaces in turn."""
    assert tok.tokenize("a" + " " * spaces + "b") == ["▁", "a", *pieces, "b"]
    assert tok.decode(tok.encode("a" + " " * spaces + "b")) == "a" + " " * spaces + "b"


def test_special_tokens_in_text_strip_whitespace(tok: ChatGLMv1Tokenizer) -> None:
    assert tok.tokenize("a \n<sop>\t b") == ["▁", "a", "<sop>", "▁", "b"]
    assert tok.tokenize("<sop> <eop>  <pad>x") == ["<sop>", "<eop>", "<pad>", "▁", "x"]
    assert 671 not in tok.encode("[gMASK]", add_special_tokens=False)  # not an HF special token: characters
    assert tok.tokenize("<n><|tab|>") == ["▁", "<n>", "<|tab|>"]  # USER_DEFINED pieces match in text


def test_image_token_offset() -> None:
    tok = ChatGLMv1Tokenizer(str(VOCAB))  # pre-"slim" revisions: 20000 image ids first
    assert len(tok) == 20000 + 1014
    assert tok.encode("你好") == [20005, 20084, 20053, 20671, 20674]
    assert (tok.pad_token_id, tok.bos_token_id, tok.gmask_token_id) == (20003, 20674, 20671)
    assert tok.decode(tok.encode("你好")) == "你好"
    assert tok.encode_text("你好") == [20005, 20084, 20053]
    out = tok(["你好", "hi there"], padding=True)
    assert out["input_ids"][0][:2] == [20003, 20003]
    assert out["position_ids"][0].tolist() == [[0, 0, 0, 1, 2, 3, 3], [0, 0, 0, 0, 0, 0, 1]]
    assert tok.convert_ids_to_tokens(7) == "<image_7>"


def test_masks_only_with_a_length(tok: ChatGLMv1Tokenizer) -> None:
    assert list(tok(["你好", "hi"]).keys()) == ["input_ids"]
    truncated = tok("介绍一下清华大学", truncation=True, max_length=4)  # a max_length builds them, unpadded
    assert truncated["input_ids"] == [5, 81, 671, 674]
    assert truncated["attention_mask"].shape == (1, 4, 4)
    multiple = tok(["你好"], padding=True, pad_to_multiple_of=8)
    assert len(multiple["input_ids"][0]) == 8 and multiple["attention_mask"][0].shape == (1, 8, 8)
    assert bool(multiple["attention_mask"][0][0, :3].all())  # pad rows/columns are masked
    np.testing.assert_array_equal(multiple["position_ids"][0][:, :3], 0)


def test_mask_position_prefers_mask_token(tok: ChatGLMv1Tokenizer) -> None:
    out = tok(["a [MASK] b"], padding=True)
    ids = out["input_ids"][0]
    assert out["position_ids"][0][0, -1] == ids.index(tok.mask_token_id)


def test_clear_errors(tok: ChatGLMv1Tokenizer) -> None:
    with pytest.raises(IndexError, match="out of range"):
        tok.decode([tok.vocab_size + 3])
    with pytest.raises(KeyError):
        tok.get_command("<|user|>")
    with pytest.raises(ValueError, match="left"):
        ChatGLMv1Tokenizer(str(VOCAB), padding_side="right")
    with pytest.raises(ValueError, match="left"):
        tok(["a", "bb"], padding=True, padding_side="right")


def test_commands_and_text_encoding(tok: ChatGLMv1Tokenizer) -> None:
    assert [tok.get_command(t) for t in ("[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>")] == [670, 671, 672, 674, 675]
    assert tok.encode_text("hi") == [5, 398, 165]
    assert tok.encode_text("hi", add_dummy_prefix=False) == [398, 165]
    assert tok.get_special_tokens_mask([5, 6], [7]) == [0, 0, 1, 1, 0, 1]


def test_save_and_reload(tok: ChatGLMv1Tokenizer, tmp_path: Path) -> None:
    tok.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["num_image_tokens"] == 0
    again = load_tokenizer(tmp_path, CHATGLM)
    assert again.encode("你好 <sop> x\n\t  y") == tok.encode("你好 <sop> x\n\t  y")
    assert again.decode([5, 84, 3, 53, 4]) == "你好\n"


def test_pad_of_encoded_rows_matches_batch_call(tok: ChatGLMv1Tokenizer) -> None:
    """``tokenizer.pad`` of rows that already carry [1, T, T] masks pads them, as transformers 4.27 did."""
    texts = ["你好", "介绍一下清华大学"]
    reference = tok(texts, padding=True, return_tensors="pt")
    rows = [dict(tok(t, truncation=True, max_length=32)) for t in texts]  # a max_length builds the masks
    for features in (rows, [{"input_ids": tok.encode(t)} for t in texts]):
        padded = tok.pad(features, return_tensors="pt")
        assert set(padded) == set(reference)
        assert all(bool((padded[k] == reference[k]).all()) for k in reference)
