"""JSON mode: the character machine accepts exactly the prefixes of JSON objects (property tests against
``json.loads``), and constrained decoding of real tiny models only ever writes such prefixes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from glmtune.infer import Engine, GenerationParams
from glmtune.infer.loading import load_for_inference
from glmtune.serve.batcher import Batcher
from glmtune.serve.json_mode import START, feed, json_constraint

SCALAR = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
VALUE = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4))
OBJECT = st.dictionaries(st.text(max_size=8), VALUE, max_size=5)
STYLE = st.sampled_from([{}, {"indent": 2}, {"separators": (",", ":")}, {"ensure_ascii": False}])


def _is_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


@settings(max_examples=300, deadline=None)
@given(OBJECT, STYLE)
def test_every_json_object_is_accepted(value: dict, style: dict) -> None:
    text = json.dumps(value, **style)
    state = START
    for i, ch in enumerate(text):
        state = feed(state, ch)
        assert state is not None, f"rejected at {i}: {text[: i + 1]!r}"
        assert (state[0] == "done") == (i == len(text) - 1)  # complete exactly at the end


JSONISH = st.text(st.sampled_from(list('{}[]:,"\\ 0123456789.-+eEtrufalsn\nxé')), max_size=30)


@settings(max_examples=1500, deadline=None)
@given(JSONISH)
def test_what_is_accepted_is_json(text: str) -> None:
    """Sound: text the machine completes is a JSON object; text it accepts as unfinished can still become one
    (checked by completing it the way a decoder would: close the open string, number, literal and containers)."""
    state = feed(START, text)
    if state is None:
        return
    if state[0] == "done":
        assert _is_object(text), text
        return
    assert _is_object(_complete(text, state)), (text, state)


def _complete(text: str, state: tuple) -> str:
    """One way to finish an accepted prefix (test-side, by the machine's own state description)."""
    mode, aux, stack = state
    tail = {
        "top": "{",
        "key_or_end": "",
        "key": '"k": 0',
        "colon": ": 0",
        "value": "0",
        "value_or_end": "",
        "after": "",
    }.get(mode)
    if mode in ("string", "escape", "hex"):
        kind = aux if mode != "hex" else aux[0]
        fill = {"string": "", "escape": "n", "hex": "0" * (aux[1] if mode == "hex" else 0)}[mode]
        tail = fill + '"' + (": 0" if kind == "key" else "")
    elif mode == "literal":
        tail = aux
    elif mode == "number":
        tail = {"sign": "1", "dot": "1", "exp": "1", "expsign": "1"}.get(aux, "")
    stack = stack or ("o" if mode == "top" else "")
    closers = "".join("}" if c == "o" else "]" for c in reversed(stack))
    return text + tail + closers


@pytest.fixture(scope="module")
def engines(tiny_dir: Callable[[str], Path]) -> dict[str, Engine]:
    torch.set_num_threads(1)
    return {f: Engine(load_for_inference(tiny_dir(f))) for f in ("chatglm3", "glm4", "chatglm")}


@pytest.mark.parametrize("family", ["chatglm3", "glm4", "chatglm"])
def test_constrained_replies_are_json(engines: dict[str, Engine], family: str) -> None:
    """Random tiny models write noise; constrained, every reply is a JSON object or (cut by max_tokens) a prefix
    of one, greedy or sampled, continuous or dynamic batching."""
    engine = engines[family]
    start = tuple(engine.family.content_start(engine.tokenizer))
    prompt = engine.prompt_ids([{"role": "user", "content": "answer in JSON"}])
    batcher = Batcher(engine, max_batch_size=4)
    cases = [GenerationParams(max_new_tokens=120, do_sample=False)] + [
        GenerationParams(max_new_tokens=120, do_sample=True, temperature=1.0, top_p=p, seed=s)
        for s, p in ((1, 1.0), (2, 0.8), (3, 0.5))
    ]
    try:
        jobs = [
            batcher.submit(
                prompt,
                p,
                starts=(start,) if start else (),
                json=json_constraint(engine.tokenizer, engine.family, engine.stop_ids, start),
            )
            for p in cases
        ]
        for job in jobs:
            events = list(job.iter_events(timeout=300))
            kind, reply = events[-1]
            assert kind == "done", reply
            text = reply.text
            state = feed(START, text)
            assert state is not None, text
            if reply.finish_reason == "stop":
                assert state[0] == "done" and _is_object(text), text
            else:
                assert reply.finish_reason == "length" and _is_object(_complete(text, state)), text
    finally:
        batcher.close()
