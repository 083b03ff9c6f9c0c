"""Property tests: rendering never crashes on valid records, labels align with input_ids, and loss falls only on
assistant content the record marks for loss (checked against an independent per-message rendering)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmtune.data import render_records
from glmtune.families import get_family
from glmtune.tokenization import load_tokenizer
from tests.conftest import fixtures_dir

PREP = fixtures_dir("prep")
TOKS = {
    "chatglm3": load_tokenizer(PREP / "tokenizers" / "chatglm3", get_family("chatglm3")),
    "chatglm2": load_tokenizer(PREP / "tokenizers" / "chatglm2", get_family("chatglm2")),
    "chatglm": load_tokenizer(PREP / "tokenizers" / "chatglm", get_family("chatglm")),
    "glm4": load_tokenizer(fixtures_dir("model", "glm4", "ckpt"), get_family("glm4")),
}
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PIECES = [*"ab xyz12\n\t中文，。!", "<|user|>", "sop", "[gMASK]", "<sop>", "  ", "hello", "😀"]
text = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)
loss = st.sampled_from([None, True, False])


@st.composite
def conversations(draw: Any, tools: bool = True) -> dict[str, Any]:
    msgs: list[dict[str, Any]] = []
    if draw(st.booleans()):
        msgs.append({"role": "system", "content": draw(text)})
    for _ in range(draw(st.integers(1, 3))):
        msgs.append({"role": "user", "content": draw(text)})
        if tools and draw(st.integers(0, 4)) == 0:
            msgs.append({"role": "tool", "name": "f", "parameters": {"x": draw(text)}, "observation": draw(text)})
        m: dict[str, Any] = {"role": "assistant", "content": draw(text)}
        flag = draw(loss)
        if flag is not None:
            m["loss"] = flag
        if tools and draw(st.integers(0, 5)) == 0:
            m["metadata"] = "get_x"
        msgs.append(m)
    if not any(m["role"] == "assistant" and m.get("loss", True) for m in msgs):
        msgs[-1]["loss"] = True
    rec: dict[str, Any] = {"conversations": msgs}
    if tools and draw(st.booleans()):
        rec["tools"] = [{"name": "f", "description": draw(text), "parameters": {}}]
    return rec


def _aligned(sample: dict[str, list[int]]) -> None:
    assert len(sample["labels"]) == len(sample["input_ids"])
    assert all(y in (-100, x) for x, y in zip(sample["input_ids"], sample["labels"], strict=True))


def _expected_label_positions(rec: dict[str, Any], tok: Any) -> tuple[list[int], set[int]]:
    """ChatGLM3 ids and the positions that must carry loss, built message by message with the tokenizer."""
    from glmtune.data.render.chatglm3 import tool_prompt
    from glmtune.families.chatglm3 import CHATGLM3, format_tool_call_code

    ids = tok.get_prefix_tokens()
    trained: set[int] = set()
    msgs = list(rec["conversations"])
    if rec.get("tools"):
        msgs.insert(0, {"role": "system", "content": tool_prompt(rec["tools"])})
    for m in msgs:
        if m["role"] == "tool":
            code = "```python\n" + format_tool_call_code("tool_call", m["parameters"]) + "\n```"
            parts = [("assistant", "f", code, True), ("observation", "", m["observation"], False)]
        else:
            parts = [(m["role"], m.get("metadata", ""), m["content"], m["role"] == "assistant" and m.get("loss", True))]
        for role, meta, content, train in parts:
            span = tok.build_single_message(role, meta, content)
            if train:
                trained.update(range(len(ids) + 1, len(ids) + len(span) + 1))
            ids = ids + span
    assert CHATGLM3 is not None
    return [*ids, tok.eos_token_id], trained


@SETTINGS
@given(rec=conversations())
def test_chatglm3_loss_only_where_marked(rec: dict[str, Any]) -> None:
    tok = TOKS["chatglm3"]
    out = render_records([rec], tok, "chatglm3")[0]
    _aligned(out)
    ids, trained = _expected_label_positions(rec, tok)
    assert out["input_ids"] == ids
    assert {i for i, y in enumerate(out["labels"]) if y != -100} == trained


@SETTINGS
@given(rec=conversations(), max_length=st.integers(8, 60))
def test_truncated_samples_fit_and_end_with_eos(rec: dict[str, Any], max_length: int) -> None:
    for family in ("chatglm3", "glm4"):
        tok = TOKS[family]
        out = render_records([rec], tok, family, max_length=max_length)[0]
        _aligned(out)
        assert len(out["input_ids"]) <= max_length
        full = render_records([rec], tok, family)[0]
        if len(full["input_ids"]) <= max_length:
            assert out == full
        elif max_length >= 16:
            assert out["input_ids"][-1] == tok.eos_token_id


@SETTINGS
@given(rec=conversations(tools=False), max_length=st.sampled_from([None, 24, 64]))
@pytest.mark.parametrize("family", ["chatglm2", "chatglm", "glm4"])
def test_every_family_renders_valid_records(family: str, rec: dict[str, Any], max_length: int | None) -> None:
    tok = TOKS[family]
    out = render_records([rec], tok, family, max_length=max_length)[0]
    _aligned(out)
    last = rec["conversations"][-1]
    trained_last = family != "glm4" or last.get("loss", True)  # rounds families train the last marked reply
    if max_length is None:
        assert out["input_ids"][-1] == tok.eos_token_id
        assert (out["labels"][-1] == tok.eos_token_id) == bool(trained_last)
    assert any(y != -100 for y in out["labels"])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


@SETTINGS
@given(args=st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True), json_values, max_size=4))
def test_tool_call_code_is_what_the_ast_writer_writes(args: dict[str, Any]) -> None:
    """``format_tool_call_code`` = the official ast.Call written by astunparse (= ast.unparse, NaN aside)."""
    import ast

    from glmtune.families.chatglm3 import format_tool_call_code

    def value(v: Any) -> ast.expr:
        return ast.Name(id="nan") if isinstance(v, float) and v != v else ast.Constant(v)

    call = ast.Call(
        func=ast.Name(id="tool_call"), args=[], keywords=[ast.keyword(arg=k, value=value(v)) for k, v in args.items()]
    )
    assert format_tool_call_code("tool_call", args) == ast.unparse(call)
