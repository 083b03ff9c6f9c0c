"""The native families behind the OpenAI-compatible server: chat, streaming and a tool-call round trip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve.conftest import Server, ThreadServer
from tests.serve.scripted import GREETING, GREETING_ANSWER, Scripted, make_scripted
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
