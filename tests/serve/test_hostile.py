"""Hostile or careless bodies get a 400 in OpenAI's shape (never a 500), bounded work, and the server keeps serving.

Raw HTTP against both tool-capable families: ``glmtune serve`` (ChatGLM3, a subprocess) and uvicorn (GLM-4).
Bodies are written as JSON text, so they can hold what ``json.dumps`` would not write (lone surrogates) or could
not (nesting past Python's recursion limit).
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.serve.conftest import Server
from tests.serve.test_errors import assert_error

pytestmark = pytest.mark.slow


@pytest.fixture(params=["api", "glm4_api"])
def server(request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue(request.param)


def _body(server: Server, messages: str = '[{"role": "user", "content": "hello"}]', **raw: str) -> str:
    """A request body; ``raw`` values are JSON text put in as they are."""
    fields = {"model": json.dumps(server.model), "messages": messages, "max_tokens": "2", **raw}
    return "{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in fields.items()) + "}"


def _tool(parameters: str = '{"type": "object"}', description: str = '"d"') -> str:
    function = f'{{"name": "f", "description": {description}, "parameters": {parameters}}}'
    return f'[{{"type": "function", "function": {function}}}]'


def _nested(depth: int) -> str:
    """A JSON schema nested ``2 * depth`` levels deep."""
    return '{"type": "object", "properties": {"a": ' * depth + '{"type": "string"}' + "}}" * depth


@pytest.mark.parametrize("seed, ok", [(2**64, False), (-(2**63) - 1, False), (2**64 - 1, True), (-(2**63), True)])
def test_seed_range(server: Server, seed: int, ok: bool) -> None:
    r = server.post(_body(server, seed=str(seed)))
    if ok:
        assert r.status_code == 200, r.text
    else:
        assert_error(r, 400, "invalid_value", "seed")


@pytest.mark.parametrize(
    "where, patch",
    [
        ("messages.0.content", {"messages": '[{"role": "user", "content": "a\\ud800b"}]'}),
        (
            "messages.0.content.0.text",
            {"messages": '[{"role": "user", "content": [{"type": "text", "text": "\\udfff"}]}]'},
        ),
        ("tools.0.function.description", {"tools": _tool(description='"\\ud800"')}),
        ("tools.0.function.parameters", {"tools": _tool(parameters='{"x\\udc00": 1}')}),
        ("model", {"model": '"chatglm\\ud800"'}),
        ("stop", {"stop": '"\\ud83d"'}),
    ],
)
def test_lone_surrogates(server: Server, where: str, patch: dict[str, str]) -> None:
    err = assert_error(server.post(_body(server, **patch)), 400, "invalid_value")
    assert err["param"] == where and "surrogate" in err["message"]


def test_deep_nesting(server: Server) -> None:
    err = assert_error(server.post(_body(server, tools=_tool(_nested(450)))), 400, "invalid_value")
    assert err["param"] == "tools.0.function.parameters" and "nested more than" in err["message"]
    arguments = json.dumps('{"a": ' + "[" * 5000 + "]" * 5000 + "}")
    messages = (
        '[{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", '
        f'"function": {{"name": "f", "arguments": {arguments}}}}}]}}, {{"role": "tool", "tool_call_id": "c", '
        '"content": "x"}]'
    )
    err = assert_error(server.post(_body(server, messages=messages)), 400, "invalid_value")
    assert err["param"] == "messages.1.tool_calls.0.function.arguments"
    assert_error(server.post(_body(server, messages="[" * 100_000 + "]" * 100_000)), 400, "invalid_json")


def test_amplifying_tool_schema_is_refused_before_rendering(server: Server) -> None:
    """A few KB of allowed nesting would render to ~10^5-10^6 tokens of indentation; the bound refuses it first."""
    leaves = "[" + ", ".join(["1"] * 2600) + "]"
    schema = '{"type": "object", "properties": {"a": ' * 28 + f'{{"type": "array", "items": {leaves}}}' + "}}" * 28
    body = _body(server, tools=_tool(schema))
    assert len(body) < 10_000
    err = assert_error(server.post(body), 400, "context_length_exceeded", "tools")
    assert "the tool definitions need at least" in err["message"]


def test_long_stop_strings(server: Server) -> None:
    assert_error(server.post(_body(server, stop=json.dumps("x" * 257))), 400, "invalid_value", "stop")
    assert_error(server.post(_body(server, stop=json.dumps(["ok", "y" * 257]))), 400, "invalid_value", "stop.1")


def test_still_serving(server: Server) -> None:
    r = server.post(_body(server))
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 2
    assert httpx.get(f"{server.url}/health", timeout=10).json()["status"] == "ok"
    if server.proc is not None:
        assert server.proc.poll() is None
