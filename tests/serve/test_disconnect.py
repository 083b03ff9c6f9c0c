"""A client that gives up mid-generation frees its batch slot at once, streamed or not, and nothing completes.

The server is real uvicorn on 127.0.0.1 (in a thread, so the test can watch the batcher's rows); the clients are
the official ``openai`` client with a short time-out (non-streamed) and one that closes a stream after its first chunk.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest

from glmtune.serve.batcher import Job
from tests.serve.conftest import Server, ThreadServer

pytestmark = pytest.mark.slow
LONG = 1000  # tokens a random tiny model writes greedily without stopping (seconds on a CPU; context 1024)


@pytest.fixture(scope="module", params=["chatglm3", "chatglm"])
def served(request: pytest.FixtureRequest, tiny_dir: Callable[[str], Path]) -> Iterator[tuple[Server, ThreadServer]]:
    """ChatGLM3 (continuous batching) and ChatGLM-6B (dynamic batching through its own generate)."""
    ts = ThreadServer(tiny_dir(request.param), None, f"{request.param}-tiny")
    yield Server(url=ts.url, model=f"{request.param}-tiny"), ts
    ts.close()


def _until(check: Callable[[], object], deadline_s: float, what: str, failed: list | None = None) -> object:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if failed:
            raise AssertionError(f"the client failed: {failed[0]!r}")
        value = check()
        if value:
            return value
        time.sleep(0.002)
    raise AssertionError(f"timed out waiting for {what}")


def _running_job(ts: ThreadServer, failed: list) -> Job:
    job = _until(lambda: ts.batcher.backend.rows and ts.batcher.backend.rows[0], 30, "the request to start", failed)
    _until(lambda: len(job.new_ids) >= 3, 30, "a few generated tokens", failed)
    return job


@pytest.mark.parametrize("stream", [False, True])
def test_client_that_gives_up_frees_its_slot(served: tuple[Server, ThreadServer], stream: bool) -> None:
    server, ts = served
    completed = ts.batcher.completed
    messages = [{"role": "user", "content": "count to a million"}]
    failure: list[BaseException] = []

    def give_up() -> None:
        try:
            if stream:
                chunks = server.client().chat.completions.create(
                    model=server.model, messages=messages, max_tokens=LONG, stream=True
                )
                next(iter(chunks))  # the role chunk: the reply has started
                _until(lambda: ts.batcher.running, 30, "the row")
                time.sleep(0.3)
                chunks.close()  # the client goes away mid-stream (its text may still be held back)
            else:
                with pytest.raises(openai.APITimeoutError):
                    server.client().with_options(timeout=2.0).chat.completions.create(
                        model=server.model, messages=messages, max_tokens=LONG
                    )
        except BaseException as e:  # surfaced in the test thread
            failure.append(e)

    client = threading.Thread(target=give_up)
    client.start()
    job = _running_job(ts, failure)
    _until(lambda: job.cancelled, 30, "the disconnect to cancel the job", failure)
    seen = len(job.new_ids)
    _until(lambda: job.finished and ts.batcher.running == 0, 10, "the slot to be freed")
    client.join(30)
    assert not failure, failure
    assert len(job.new_ids) <= seen + 1, "the row kept generating after its client had gone"
    assert len(job.new_ids) < LONG
    assert ts.batcher.completed == completed, "a request nobody received was counted as completed"
    r = server.client().chat.completions.create(model=server.model, messages=messages, max_tokens=3)
    assert r.usage.completion_tokens <= 3 and ts.batcher.completed == completed + 1
