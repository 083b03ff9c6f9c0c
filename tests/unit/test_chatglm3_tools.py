"""ChatGLM3 (and -32k) tool definitions in the system message, against the official ``build_chat_input``:
a system item with ``tools`` is ``build_single_message("system", metadata, content + "\\n" +
json.dumps(tools, indent=4, ensure_ascii=False))``, i.e. ``<|system|>`` + sp(metadata + "\\n") + sp(that text).

Checked on every path that renders it: ``render_chat``, ``apply_chat_template`` (the Jinja twin), the default
training-data mode, the server's prompt, and the native export's chat template in plain transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmtune.data import render_records
from glmtune.families import get_family
from glmtune.model.tiny import make_tiny
from glmtune.tokenization import load_tokenizer

SCHEMAS = [
    {"name": "no_type", "description": "no type field", "parameters": {"properties": {"x": {"description": "d"}}}},
    {"name": "empty_required", "parameters": {"type": "object", "properties": {}, "required": []}},
    {
        "name": "nested",
        "description": "外层 description",
        "parameters": {
            "type": "object",
            "properties": {
                "where": {
                    "type": "object",
                    "description": "嵌套的描述 ünïcödé",
                    "properties": {"city": {"type": "string", "description": "城市，例如“北京”"}},
                    "required": ["city"],
                }
            },
            "required": ["where"],
        },
    },
    {"name": "emoji_and_escapes", "description": 'quotes " \\ / tab\t nl\n 😀 <b>&', "parameters": {}},
    {"name": "no_parameters"},
]

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def toks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return {
        name: load_tokenizer(make_tiny(name, tmp_path_factory.mktemp(name) / "ckpt"), get_family(name))
        for name in ("chatglm3", "chatglm3-32k")
    }


def official_ids(tok: Any, messages: list[dict[str, Any]]) -> list[int]:
    """``build_chat_input`` of the history ``messages[:-1]`` and the query ``messages[-1]`` (the official rule)."""
    sp = tok.sp_model
    ids = [tok.get_command("[gMASK]"), tok.get_command("sop")]
    for item in messages:
        content = item["content"]
        if item["role"] == "system" and "tools" in item:
            content = content + "\n" + json.dumps(item["tools"], indent=4, ensure_ascii=False)
        meta = item.get("metadata", "")
        ids += [tok.get_command(f"<|{item['role']}|>"), *sp.encode(f"{meta}\n"), *sp.encode(content)]
    return [*ids, tok.get_command("<|assistant|>")]


def _messages(tools: list[Any], content: str = "You are a helpful assistant.") -> list[dict[str, Any]]:
    return [{"role": "system", "content": content, "tools": tools}, {"role": "user", "content": "天气怎么样?"}]


@pytest.mark.parametrize("name", ["chatglm3", "chatglm3-32k"])
@pytest.mark.parametrize("index", range(len(SCHEMAS) + 1))
def test_schema_renders_as_build_chat_input(toks: dict[str, Any], name: str, index: int) -> None:
    tok, family = toks[name], get_family(name)
    tools = SCHEMAS if index == len(SCHEMAS) else [SCHEMAS[index]]
    messages = _messages(tools)
    want = official_ids(tok, messages)
    assert family.render_chat(tok, messages) == want
    assert tok.apply_chat_template(messages, add_generation_prompt=True) == want


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(st.text(max_size=6), json_values, max_size=4), max_size=3), st.text(max_size=10))
def test_any_json_tools_render_as_build_chat_input(toks: dict[str, Any], tools: list[Any], content: str) -> None:
    tok, family = toks["chatglm3-32k"], get_family("chatglm3-32k")
    messages = _messages(tools, content)
    want = official_ids(tok, messages)
    assert family.render_chat(tok, messages) == want
    assert tok.apply_chat_template(messages, add_generation_prompt=True) == want


def test_training_data_and_server_prompts(toks: dict[str, Any], tmp_path: Path) -> None:
    from glmtune.infer import Engine
    from glmtune.model.load import load

    tok, family = toks["chatglm3"], get_family("chatglm3")
    record = {"messages": [*_messages(SCHEMAS), {"role": "assistant", "content": "晴"}]}
    sample = render_records([record], tok, family)[0]
    prompt = official_ids(tok, _messages(SCHEMAS))
    assert sample["input_ids"][: len(prompt)] == prompt

    engine = Engine(load(make_tiny("chatglm3", tmp_path / "m"), dtype="fp32"))
    openai_tools = [{"type": "function", "function": s} for s in SCHEMAS]
    messages = engine.build_messages([{"role": "user", "content": "天气怎么样?"}], openai_tools)
    from glmtune.families.chatglm3 import TOOLS_SYSTEM_PROMPT as CHATGLM3_TOOLS_PROMPT

    assert engine.prompt_ids(messages) == official_ids(engine.tokenizer, _messages(SCHEMAS, CHATGLM3_TOOLS_PROMPT))


def test_native_export_template_in_plain_transformers(toks: dict[str, Any]) -> None:
    from glmtune.tokenization.fast_export import build_fast_tokenizer

    tok, family = toks["chatglm3"], get_family("chatglm3")
    fast = build_fast_tokenizer(tok, family)
    messages = _messages(SCHEMAS)
    assert fast.apply_chat_template(messages, add_generation_prompt=True, return_dict=False) == official_ids(
        tok, messages
    )
