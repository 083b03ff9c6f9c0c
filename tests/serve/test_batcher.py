"""The batcher against the engine: same greedy replies as ``Engine.generate``, per-row params, joins, cancel."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from glmtune.infer import Engine, GenerationParams
from glmtune.infer.loading import load_for_inference
from glmtune.model.tiny import make_tiny
from glmtune.serve.batcher import Batcher, Job


@pytest.fixture(scope="module")
def engines(tiny_dir: Callable[[str], Path]) -> dict[str, Engine]:
    return {f: Engine(load_for_inference(tiny_dir(f))) for f in ("chatglm3", "glm4", "chatglm")}


def collect(job: Job) -> tuple[str, object]:
    text, reply = "", None
    for kind, value in job.iter_events(timeout=60):
        if kind == "delta":
            text += value
        elif kind == "done":
            reply = value
        else:
            raise AssertionError(value)
    return text, reply


def conversations(n: int) -> list[tuple[list[dict], GenerationParams]]:
    rng = random.Random(0)
    return [
        (
            [{"role": "user", "content": "hello " * rng.randint(1, 25)}],
            GenerationParams(max_new_tokens=rng.randint(1, 24), do_sample=False),
        )
        for _ in range(n)
    ]


@pytest.mark.parametrize(
    "family, backend",
    [("chatglm3", "continuous"), ("glm4", "continuous"), ("chatglm3", "generate"), ("chatglm", "auto")],
)
def test_same_replies_as_engine(engines: dict[str, Engine], family: str, backend: str) -> None:
    engine = engines[family]
    cases = conversations(24)
    expected = [engine.generate([m], p)[0] for m, p in cases]
    batcher = Batcher(engine, max_batch_size=6, backend=backend)
    if backend == "auto":  # ChatGLM-6B's own model class: dynamic batching through its generate()
        assert type(batcher.backend).__name__ == "GenerateBackend"
    try:
        jobs = []
        for i, (m, p) in enumerate(cases):
            jobs.append(batcher.submit(engine.prompt_ids(engine.build_messages(m)), p))
            if i % 5 == 0:
                time.sleep(0.005)  # later requests join a running batch
        for job, ref in zip(jobs, expected, strict=True):
            text, reply = collect(job)
            assert (reply.text, reply.finish_reason, reply.completion_tokens) == (
                ref.text,
                ref.finish_reason,
                ref.completion_tokens,
            )
            assert text == reply.text  # the streamed deltas add up to the reply
    finally:
        batcher.close()


def test_rows_keep_their_own_params(engines: dict[str, Engine]) -> None:
    engine = engines["chatglm3"]
    prompt = engine.prompt_ids([{"role": "user", "content": "tell me something"}])
    seeded = GenerationParams(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=123)
    greedy = GenerationParams(max_new_tokens=16, do_sample=False)
    batcher = Batcher(engine, max_batch_size=8)
    try:
        alone = collect(batcher.submit(prompt, seeded))[1].text
        jobs = [
            batcher.submit(prompt, p)
            for p in (
                GenerationParams(max_new_tokens=16, temperature=1.5),
                seeded,
                greedy,
                GenerationParams(max_new_tokens=9, top_k=5, repetition_penalty=1.3, seed=1),
            )
        ]
        jobs.append(
            batcher.submit(
                prompt, GenerationParams(max_new_tokens=16, seed=3), presence_penalty=1.0, frequency_penalty=0.5
            )
        )
        replies = [collect(j)[1] for j in jobs]
        assert replies[1].text == alone  # a seeded row does not depend on its batch mates
        assert replies[2].text == engine.generate([[{"role": "user", "content": "tell me something"}]], greedy)[0].text
        assert replies[3].completion_tokens <= 9
    finally:
        batcher.close()


def test_cancel_and_stop_strings(engines: dict[str, Engine]) -> None:
    engine = engines["glm4"]
    prompt = engine.prompt_ids([{"role": "user", "content": "hello"}])
    batcher = Batcher(engine, max_batch_size=4)
    try:
        long = batcher.submit(prompt, GenerationParams(max_new_tokens=400, do_sample=False))
        long.cancel()
        short = batcher.submit(prompt, GenerationParams(max_new_tokens=5, do_sample=False))
        assert collect(short)[1].completion_tokens <= 5
        deadline = time.monotonic() + 10
        while batcher.running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert batcher.running == 0 and len(long.new_ids) < 400
        full = engine.generate(
            [[{"role": "user", "content": "hello"}]], GenerationParams(max_new_tokens=20, do_sample=False)
        )[0].text
        stop = full.strip()[3:6]
        text, reply = collect(batcher.submit(prompt, GenerationParams(max_new_tokens=20, do_sample=False, stop=[stop])))
        assert reply.finish_reason == "stop" and stop not in reply.text and text == reply.text
    finally:
        batcher.close()


def test_ptuning_prefix_model(tmp_path) -> None:
    """A P-Tuning v2 prefix lives outside the KV cache; the merged-cache loop must still match generate."""
    import torch

    from glmtune.model.ptuning import add_prefix

    loaded = load_for_inference(make_tiny("chatglm3", tmp_path / "m"))
    torch.manual_seed(0)
    add_prefix(loaded.model, pre_seq_len=4)
    engine = Engine(loaded)
    cases = conversations(6)
    expected = [engine.generate([m], p)[0].text for m, p in cases]
    batcher = Batcher(engine, max_batch_size=3)
    try:
        jobs = [batcher.submit(engine.prompt_ids(engine.build_messages(m)), p) for m, p in cases]
        assert [collect(j)[1].text for j in jobs] == expected
    finally:
        batcher.close()


@pytest.mark.parametrize(
    "family, backend", [("chatglm3", "continuous"), ("glm4", "continuous"), ("chatglm3", "generate")]
)
def test_tool_choice_forces_the_start_of_a_call(engines: dict[str, Engine], family: str, backend: str) -> None:
    """``tool_choice`` "required" / named: the request is prepared with the tools' call starts, the reply begins
    with one of them (the random tiny model would not write one), and its batch neighbour is unaffected."""
    from glmtune.serve.openai_format import Defaults, prepare
    from glmtune.serve.schemas import ChatCompletionRequest

    engine = engines[family]
    tools = [
        {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
        for name in ("get_weather", "get_time")
    ]
    starts = {n: tuple(engine.family.tool_call_start(engine.tokenizer, n)) for n in ("get_weather", "get_time")}

    def prepared(choice: object) -> object:
        body = {"model": "m", "messages": [{"role": "user", "content": "hello"}], "tools": tools, "max_tokens": 12}
        req = ChatCompletionRequest.model_validate({**body, "temperature": 0, "tool_choice": choice})
        return prepare(req, engine, 2048, Defaults())

    assert prepared("auto").starts == () and prepared("none").starts == ()
    assert set(prepared("required").starts) == set(starts.values())
    named = prepared({"type": "function", "function": {"name": "get_time"}})
    assert named.starts == (starts["get_time"],)
    free = prepared("auto")
    expected = engine.generate_ids([free.prompt], free.params)[0]
    batcher = Batcher(engine, max_batch_size=4, backend=backend)
    try:
        forced = batcher.submit(named.prompt, named.params, True, starts=named.starts)
        other = batcher.submit(free.prompt, free.params, True)
        collect(forced), collect(other)
    finally:
        batcher.close()
    assert tuple(forced.new_ids[: len(starts["get_time"])]) == starts["get_time"]
    assert other.new_ids == expected and tuple(expected[: len(starts["get_time"])]) != starts["get_time"]
