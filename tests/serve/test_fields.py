"""Fields OpenAI honours are honoured or refused by name, never silently ignored: ``response_format`` (JSON mode
constrains decoding), ``top_logprobs``, a ``tool`` message's ``tool_call_id``; through the official client."""

from __future__ import annotations

import json

import openai
import pytest

from glmtune.serve.json_mode import START, feed
from tests.serve.conftest import Server
from tests.serve.scripted import QUESTION, WEATHER_TOOL

pytestmark = pytest.mark.slow
JSON_ASK = [{"role": "user", "content": "hello, answer in JSON"}]


@pytest.fixture(params=["api", "glm4_api"])
def server(request: pytest.FixtureRequest) -> Server:
    return request.getfixturevalue(request.param)


def _refused(server: Server, param: str, code: str | None = None, **kw: object) -> str:
    kw.setdefault("messages", JSON_ASK)
    with pytest.raises(openai.BadRequestError) as e:
        server.client().chat.completions.create(model=server.model, max_tokens=4, **kw)
    assert e.value.status_code == 400 and e.value.body["param"] == param, e.value.body
    if code is not None:
        assert e.value.body["code"] == code
    return e.value.body["message"]


def _check_json(text: str, finish: str) -> None:
    assert text.startswith("{"), text
    if finish == "stop":
        assert isinstance(json.loads(text), dict), text
    else:
        assert finish == "length" and feed(START, text) is not None, text


def test_json_object_mode(server: Server) -> None:
    client = server.client()
    kw = {"model": server.model, "messages": JSON_ASK, "response_format": {"type": "json_object"}, "max_tokens": 60}
    r = client.chat.completions.create(**kw)
    _check_json(r.choices[0].message.content, r.choices[0].finish_reason)
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **kw))
    assert streamed == r.choices[0].message.content
    for seed in (1, 2):
        s = client.chat.completions.create(temperature=1.0, seed=seed, **kw)
        _check_json(s.choices[0].message.content, s.choices[0].finish_reason)
    plain = client.chat.completions.create(model=server.model, messages=JSON_ASK, response_format={"type": "text"})
    assert plain.choices[0].finish_reason in ("stop", "length")


def test_json_mode_with_tools_offered(glm4_api: Server) -> None:
    """With tools on "auto" the reply may still call a tool (the scripted model does); content would be JSON."""
    r = glm4_api.client().chat.completions.create(
        model=glm4_api.model,
        messages=[{"role": "user", "content": QUESTION}, {"role": "system", "content": "Answer in JSON."}],
        tools=[WEATHER_TOOL],
        response_format={"type": "json_object"},
        max_tokens=40,
    )
    choice = r.choices[0]
    if choice.message.tool_calls:
        assert choice.message.tool_calls[0].function.name == "get_weather"
    else:
        _check_json(choice.message.content, choice.finish_reason)


def test_json_mode_refusals(server: Server) -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    assert "json_schema" in _refused(server, "response_format.type", "unsupported_value", response_format=schema)
    msg = _refused(
        server, "messages", messages=[{"role": "user", "content": "hi"}], response_format={"type": "json_object"}
    )
    assert "json" in msg
    _refused(
        server,
        "response_format",
        response_format={"type": "json_object"},
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    _refused(server, "response_format.type", response_format={"type": "yaml"})


def test_top_logprobs_and_logprobs(server: Server) -> None:
    assert "logprobs" in _refused(server, "top_logprobs", top_logprobs=2)
    _refused(server, "logprobs", "unsupported_value", logprobs=True, top_logprobs=2)
    _refused(server, "top_logprobs", top_logprobs=21, logprobs=True)


def test_tool_message_needs_tool_call_id(server: Server) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    messages = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "tool_calls": [call]},
        {"role": "tool", "content": "sunny"},
    ]
    msg = _refused(server, "messages.2.tool_call_id", "missing_required_parameter", messages=messages)
    assert msg == "Missing required parameter: 'messages.2.tool_call_id'."
    messages[2]["tool_call_id"] = "call_1"
    r = server.client().chat.completions.create(model=server.model, messages=messages, max_tokens=4)
    assert r.choices[0].finish_reason in ("stop", "length", "tool_calls")


def test_json_mode_without_tools_families(no_tools_api: Server) -> None:
    r = no_tools_api.client().chat.completions.create(
        model=no_tools_api.model, messages=JSON_ASK, response_format={"type": "json_object"}, max_tokens=40
    )
    _check_json(r.choices[0].message.content, r.choices[0].finish_reason)
