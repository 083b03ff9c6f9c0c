"""The request bounds of ``glmtune.serve.limits``: the early prompt-length bound never over-estimates (property
test against the real tiny tokenizers and prompt renderers), and the body check finds what it must, iteratively."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmtune.infer import Engine
from glmtune.infer.loading import load_for_inference
from glmtune.serve.limits import MAX_JSON_DEPTH, indented_json_chars, json_problem, min_prompt_tokens

TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=30,
)


@pytest.fixture(scope="module")
def engines(tiny_dir: Callable[[str], Path]) -> dict[str, Engine]:
    return {f: Engine(load_for_inference(tiny_dir(f))) for f in ("chatglm3", "glm4", "chatglm2", "chatglm")}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    family=st.sampled_from(["chatglm3", "glm4", "chatglm2", "chatglm"]),
    texts=st.lists(TEXT, min_size=1, max_size=4),
    params=st.lists(JSON, max_size=2),
)
def test_prompt_bound_never_exceeds_the_real_prompt(engines: dict[str, Engine], family, texts, params) -> None:
    engine = engines[family]
    roles = ["user", "assistant"]
    messages = [{"role": roles[i % 2], "content": t} for i, t in enumerate(texts)]
    tools = None
    if params and engine.family.supports_tools:
        tools = [{"type": "function", "function": {"name": f"f{i}", "parameters": p}} for i, p in enumerate(params)]
    real = len(engine.prompt_ids(engine.build_messages(messages, tools)))
    shown = sum(1 for t in texts if t)
    floor, from_tools = min_prompt_tokens(texts, shown, tools, engine.tokenizer, context=1)
    assert from_tools <= floor <= real


@given(JSON)
def test_indented_size_is_a_lower_bound(value) -> None:
    assert indented_json_chars(value, cap=10**9) <= len(json.dumps(value, indent=4, ensure_ascii=False))


def test_body_problems_are_found_iteratively() -> None:
    deep: object = "leaf"
    for _ in range(20000):  # far past Python's recursion limit
        deep = {"a": [deep]}
    path, what = json_problem({"tools": [{"function": {"parameters": deep}}]})
    assert path == "tools.0.function.parameters" and f"more than {MAX_JSON_DEPTH}" in what
    assert json_problem({"messages": [{"content": "ok"}, {"content": "bad \ud800"}]})[0] == "messages.1.content"
    assert json_problem({"tools": [{"x": {"bad\udfff": 1}}]})[0] == "tools.0.x"
    assert json_problem({"fine": ["ünïcödé ✓", "😀", {"k": [1, 2.5, None]}]}) is None
