"""The web UI's callbacks (streaming, history, system prompt, regenerate) on the scripted ChatGLM3."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from glmtune.serve.batcher import Batcher
from glmtune.webui.app import THINKING, ChatSession, build_demo
from tests.serve.scripted import GREETING, GREETING_ANSWER, Scripted

pytestmark = pytest.mark.slow
KNOBS = ("", 64, 0.0, 0.8)  # system prompt, max tokens, temperature, top_p


@pytest.fixture(scope="module")
def session(chatglm3_scripted: Scripted) -> Iterator[ChatSession]:
    from glmtune.serve.server import build

    _, batcher = build(chatglm3_scripted.base, chatglm3_scripted.adapter, max_batch_size=4)
    yield ChatSession(batcher)
    batcher.close()


def test_submit_streams_into_history(session: ChatSession) -> None:
    updates = list(session.submit(GREETING, [], *KNOBS))
    box, shown, history = updates[-1]
    assert box == "" and history == shown
    assert history == [{"role": "user", "content": GREETING}, {"role": "assistant", "content": GREETING_ANSWER}]
    partial = [u[1][-1]["content"] for u in updates[:-1]]
    assert len({p for p in partial if p}) > 1  # the answer grew over several updates
    assert all(GREETING_ANSWER.startswith(p) for p in partial)


def test_regenerate_and_system_prompt(session: ChatSession) -> None:
    history = list(session.submit(GREETING, [], *KNOBS))[-1][2]
    again = list(session.regenerate(history, *KNOBS))[-1][2]
    assert again == history  # greedy: the same answer replaces the old one
    with_system = list(session.submit("hi", again, "You are terse.", 6, 0.9, 0.9))[-1][2]
    assert len(with_system) == 4 and with_system[-1]["role"] == "assistant"
    assert list(session.submit("   ", again, *KNOBS))[-1][2] == again  # blank input: nothing happens
    assert list(session.regenerate([], *KNOBS))[-1][2] == []


def test_context_overflow_is_reported(session: ChatSession) -> None:
    history = list(session.submit("hello " * 3000, [], *KNOBS))[-1][2]
    assert history[-1]["content"].startswith("[error]")


def test_page_builds(session: ChatSession) -> None:
    batcher: Batcher = session.batcher
    demo = build_demo(batcher, title="t")
    config = demo.get_config_file()
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert {"chatbot", "message", "send", "regenerate", "clear", "system", "temperature", "top_p"} <= ids


def test_reasoning_streams_as_thinking(tiny_dir: Callable[[str], Path]) -> None:
    """GLM-4.7's prompt opens a think block: the random tiny model only reasons; the page shows it as thinking
    while it streams (not as an error) and keeps only the answer."""
    from glmtune.serve.server import build

    _, batcher = build(tiny_dir("glm-4.7"), None, max_batch_size=2)
    try:
        updates = list(ChatSession(batcher).submit("hi", [], "", 12, 0.0, 0.8))
    finally:
        batcher.close()
    partial = [u[1][-1]["content"] for u in updates[1:-2]]  # the last two: the reply's text, the history
    assert partial and all(p.startswith(THINKING) and "[error]" not in p for p in partial)
    assert updates[-1][2][-1] == {"role": "assistant", "content": ""}  # no answer after the thoughts
