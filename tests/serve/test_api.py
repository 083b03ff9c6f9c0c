"""The OpenAI API through the official ``openai`` client: chat, streaming, usage, tools (ChatGLM3 and GLM-4)."""

from __future__ import annotations

import json
import re

import httpx
import openai
import pytest

from tests.serve.conftest import Server
from tests.serve.scripted import (
    FINAL_ANSWER,
    GREETING,
    GREETING_ANSWER,
    OBSERVATION,
    QUESTION,
    WEATHER_TOOL,
    Scripted,
)

pytestmark = pytest.mark.slow
HELLO = [{"role": "user", "content": GREETING}]


def expected_usage(scripted: Scripted, messages: list[dict], tools: list[dict] | None = None) -> tuple[int, int]:
    """(prompt, completion) token counts the engine itself reports for a greedy reply."""
    from glmtune.infer import Engine, GenerationParams
    from glmtune.infer.loading import load_for_inference

    engine = Engine(load_for_inference(scripted.base, scripted.adapter))
    reply = engine.generate([messages], GenerationParams(max_new_tokens=64, do_sample=False), tools=tools)[0]
    return reply.prompt_tokens, reply.completion_tokens


def test_models_and_health(api: Server) -> None:
    models = api.client().models.list()
    assert [m.id for m in models.data] == ["chatglm3"]  # the model directory's name
    assert api.client().models.retrieve("chatglm3").id == "chatglm3"
    health = httpx.get(f"{api.url}/health", timeout=10).json()  # no API key needed
    assert health["status"] == "ok" and health["family"] == "chatglm3"


def test_chat(api: Server, chatglm3_scripted: Scripted) -> None:
    r = api.client().chat.completions.create(model=api.model, messages=HELLO, temperature=0)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == GREETING_ANSWER
    assert r.choices[0].finish_reason == "stop"
    prompt, completion = expected_usage(chatglm3_scripted, HELLO)
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (prompt, completion)
    assert r.usage.total_tokens == prompt + completion


def test_chat_text_parts_and_system(api: Server) -> None:
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "hel"}, {"type": "text", "text": "lo"}]},
    ]
    r = api.client().chat.completions.create(model=api.model, messages=messages, max_tokens=5)
    assert r.choices[0].message.content is not None and r.usage.completion_tokens <= 5


def test_stream(api: Server) -> None:
    stream = api.client().chat.completions.create(
        model=api.model, messages=HELLO, temperature=0, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == GREETING_ANSWER
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert len({c.id for c in chunks}) == 1


def test_stream_arrives_in_pieces(api: Server) -> None:
    """A longer reply comes as many chunks (deltas merge only while a client lags behind)."""
    stream = api.client().chat.completions.create(
        model=api.model, messages=[{"role": "user", "content": "story"}], max_tokens=48, temperature=0, stream=True
    )
    pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    reply = api.client().chat.completions.create(
        model=api.model, messages=[{"role": "user", "content": "story"}], max_tokens=48, temperature=0
    )
    assert len(pieces) > 4 and "".join(pieces) == reply.choices[0].message.content


def test_stream_wire_format(api: Server) -> None:
    body = {"model": api.model, "messages": HELLO, "stream": True, "max_tokens": 4}
    headers = {"Authorization": f"Bearer {api.api_key}"}
    with httpx.stream("POST", f"{api.url}/v1/chat/completions", json=body, headers=headers, timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        data = [line[len("data: ") :] for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    finals = [json.loads(d)["choices"][0]["finish_reason"] for d in data[:-1]]
    assert finals[-1] == "length" and all(f is None for f in finals[:-1])


def test_length_stop_and_seed(api: Server) -> None:
    client = api.client()
    r = client.chat.completions.create(model=api.model, messages=HELLO, max_tokens=3, temperature=0)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3
    r = client.chat.completions.create(model=api.model, messages=HELLO, temperature=0, stop=["tiny"])
    assert r.choices[0].message.content == "Hello! I am a" and r.choices[0].finish_reason == "stop"
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model=api.model, messages=HELLO, temperature=0, stop="tiny", stream=True
        )
        if c.choices
    )
    assert streamed == "Hello! I am a"
    sampled = [
        client.chat.completions.create(
            model=api.model,
            messages=[{"role": "user", "content": "tell me"}],
            temperature=1.0,
            top_p=0.9,
            seed=7,
            max_tokens=12,
        )
        .choices[0]
        .message.content
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1]


def _call_round_trip(server: Server, stream: bool) -> None:
    client = server.client()
    messages: list[dict] = [{"role": "user", "content": QUESTION}]
    if stream:
        calls: dict[int, dict] = {}
        finish = None
        for c in client.chat.completions.create(
            model=server.model, messages=messages, tools=[WEATHER_TOOL], temperature=0, stream=True
        ):
            delta = c.choices[0].delta
            assert not delta.content  # a tool call is never streamed as text
            for tc in delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += tc.id or ""
                entry["name"] += tc.function.name or ""
                entry["arguments"] += tc.function.arguments or ""
            finish = c.choices[0].finish_reason or finish
        assert finish == "tool_calls" and len(calls) == 1
        call = calls[0]
    else:
        r = client.chat.completions.create(
            model=server.model, messages=messages, tools=[WEATHER_TOOL], tool_choice="auto", temperature=0
        )
        assert r.choices[0].finish_reason == "tool_calls" and r.choices[0].message.content is None
        tc = r.choices[0].message.tool_calls[0]
        call = {"id": tc.id, "name": tc.function.name, "arguments": tc.function.arguments}
    assert re.fullmatch(r"call_[0-9a-f]{24}", call["id"])
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": OBSERVATION},
    ]
    r = client.chat.completions.create(model=server.model, messages=messages, tools=[WEATHER_TOOL], temperature=0)
    assert r.choices[0].message.content == FINAL_ANSWER and r.choices[0].finish_reason == "stop"
    assert not r.choices[0].message.tool_calls


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_tool_round_trip_chatglm3(api: Server, stream: bool) -> None:
    _call_round_trip(api, stream)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_tool_round_trip_glm4(glm4_api: Server, stream: bool) -> None:
    _call_round_trip(glm4_api, stream)


def test_tool_usage_counts_tools_prompt(glm4_api: Server, glm4_scripted: Scripted) -> None:
    messages = [{"role": "user", "content": QUESTION}]
    r = glm4_api.client().chat.completions.create(model=glm4_api.model, messages=messages, tools=[WEATHER_TOOL])
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == expected_usage(glm4_scripted, messages, [WEATHER_TOOL])


def test_tool_choice(glm4_api: Server) -> None:
    client = glm4_api.client()
    r = client.chat.completions.create(
        model=glm4_api.model,
        messages=[{"role": "user", "content": QUESTION}],
        tools=[WEATHER_TOOL],
        tool_choice="none",
        max_tokens=8,
    )
    assert r.choices[0].finish_reason != "tool_calls" and not r.choices[0].message.tool_calls
    named = {"type": "function", "function": {"name": "get_weather"}}
    r = client.chat.completions.create(
        model=glm4_api.model, messages=[{"role": "user", "content": QUESTION}], tools=[WEATHER_TOOL], tool_choice=named
    )
    assert r.choices[0].message.tool_calls[0].function.name == "get_weather"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=glm4_api.model,
            messages=[{"role": "user", "content": QUESTION}],
            tools=[WEATHER_TOOL],
            tool_choice={"type": "function", "function": {"name": "other"}},
        )
    assert e.value.body["param"] == "tool_choice"


def test_families_without_tools(no_tools_api: Server) -> None:
    client = no_tools_api.client()
    r = client.chat.completions.create(model=no_tools_api.model, messages=HELLO, max_tokens=4)
    assert r.usage.completion_tokens <= 4 and r.choices[0].finish_reason in ("stop", "length")
    streamed = client.chat.completions.create(model=no_tools_api.model, messages=HELLO, max_tokens=4, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == r.choices[0].message.content
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=no_tools_api.model, messages=HELLO, tools=[WEATHER_TOOL])
    assert e.value.status_code == 400 and e.value.body["code"] == "tools_not_supported"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=no_tools_api.model, messages=[*HELLO, {"role": "tool", "tool_call_id": "call_1", "content": "{}"}]
        )
