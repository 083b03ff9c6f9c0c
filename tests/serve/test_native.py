"""The native families behind the OpenAI-compatible server: chat, streaming and a tool-call round trip."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from glmtune.infer import Engine, GenerationParams, Reply, Thought
from tests.serve.conftest import Server, ThreadServer
from tests.serve.scripted import (
    CALL,
    FINAL_ANSWER,
    GREETING,
    GREETING_ANSWER,
    OBSERVATION,
    QUESTION,
    THOUGHT,
    WEATHER_TOOL,
    Scripted,
    make_scripted,
)
from tests.serve.test_api import _call_round_trip


@pytest.fixture(scope="module")
def glm4_0414_scripted(scripted_root: Path) -> Scripted:
    return make_scripted("glm4-0414", scripted_root)


@pytest.fixture(scope="module")
def glm4_0414_api(glm4_0414_scripted: Scripted) -> Iterator[Server]:
    ts = ThreadServer(glm4_0414_scripted.base, glm4_0414_scripted.adapter, "glm4-0414-tiny")
    yield Server(url=ts.url, model="glm4-0414-tiny")
    ts.close()


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_glm4_0414_tool_round_trip(glm4_0414_api: Server, stream: bool) -> None:
    _call_round_trip(glm4_0414_api, stream)


@pytest.mark.slow
def test_glm4_0414_chat_and_stream(glm4_0414_api: Server) -> None:
    client = glm4_0414_api.client()
    messages = [{"role": "user", "content": GREETING}]
    r = client.chat.completions.create(model=glm4_0414_api.model, messages=messages, temperature=0)
    assert r.choices[0].message.content == GREETING_ANSWER and r.choices[0].finish_reason == "stop"
    chunks = client.chat.completions.create(model=glm4_0414_api.model, messages=messages, temperature=0, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == GREETING_ANSWER


@pytest.fixture(scope="module", params=["glm4-moe", "glm-4.7"])
def xml_api(request: pytest.FixtureRequest, scripted_root: Path) -> Iterator[Server]:
    scripted = make_scripted(request.param, scripted_root)
    ts = ThreadServer(scripted.base, scripted.adapter, f"{request.param}-tiny")
    yield Server(url=ts.url, model=f"{request.param}-tiny", engine=ts.engine)
    ts.close()


@pytest.mark.slow
def test_xml_tool_call_with_reasoning(xml_api: Server) -> None:
    """The openai client gets reasoning_content apart, the XML call as tool_calls (JSON arguments), and the
    answer after the tool result; streamed, reasoning arrives as reasoning_content deltas."""
    client = xml_api.client()
    messages: list[dict] = [{"role": "user", "content": QUESTION}]
    r = client.chat.completions.create(model=xml_api.model, messages=messages, tools=[WEATHER_TOOL], temperature=0)
    msg = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls" and msg.model_extra["reasoning_content"] == THOUGHT
    call = msg.tool_calls[0]
    assert call.function.name == CALL.name and json.loads(call.function.arguments) == CALL.arguments
    stream = client.chat.completions.create(
        model=xml_api.model, messages=messages, tools=[WEATHER_TOOL], temperature=0, stream=True
    )
    thought, names, finish = "", [], None
    for c in stream:
        delta = c.choices[0].delta
        thought += (delta.model_extra or {}).get("reasoning_content") or ""
        assert not delta.content
        names += [tc.function.name for tc in delta.tool_calls or [] if tc.function.name]
        finish = c.choices[0].finish_reason or finish
    assert (thought, names, finish) == (THOUGHT, [CALL.name], "tool_calls")
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": OBSERVATION},
    ]
    r = client.chat.completions.create(model=xml_api.model, messages=messages, tools=[WEATHER_TOOL], temperature=0)
    assert r.choices[0].message.content == FINAL_ANSWER and r.choices[0].finish_reason == "stop"
    assert r.choices[0].message.model_extra["reasoning_content"] == THOUGHT


@pytest.mark.slow
def test_xml_reasoning_through_engine_stream(xml_api: Server) -> None:
    """``glmtune chat``'s path (Engine.stream over the same core): reasoning deltas apart, the call parsed."""
    engine = xml_api.engine
    assert isinstance(engine, Engine)
    pieces = list(
        engine.stream([{"role": "user", "content": QUESTION}], GenerationParams(do_sample=False), [WEATHER_TOOL])
    )
    reply = pieces[-1]
    assert isinstance(reply, Reply) and reply.reasoning == THOUGHT and reply.tool_calls == [CALL]
    assert "".join(p for p in pieces[:-1] if isinstance(p, Thought)) == THOUGHT
    assert not "".join(p for p in pieces[:-1] if not isinstance(p, Thought))


@pytest.mark.slow
def test_xml_thinking_off_and_forced_call(xml_api: Server) -> None:
    client = xml_api.client()
    hello = [{"role": "user", "content": GREETING}]
    r = client.chat.completions.create(model=xml_api.model, messages=hello, temperature=0)
    assert r.choices[0].message.content == GREETING_ANSWER
    off = client.chat.completions.create(
        model=xml_api.model,
        messages=hello,
        temperature=0,
        max_tokens=4,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}},
    )
    assert not off.choices[0].message.model_extra.get("reasoning_content")
    named = {"type": "function", "function": {"name": CALL.name}}
    question = [{"role": "user", "content": QUESTION}]
    r = client.chat.completions.create(
        model=xml_api.model, messages=question, tools=[WEATHER_TOOL], tool_choice=named, temperature=0, max_tokens=64
    )
    assert r.choices[0].message.tool_calls[0].function.name == CALL.name
