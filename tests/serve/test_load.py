"""A bounded load test: 64 concurrent clients on 127.0.0.1, a fixed number of requests, then it stops.

Half stream, half do not; sampling settings differ per client. Pass: every request answered, no 5xx, the server
process still alive and idle afterwards, and requests were really batched (``/health`` saw several running).
"""

from __future__ import annotations

import asyncio
import time

import httpx
import openai
import pytest

from tests.serve.conftest import Server

pytestmark = pytest.mark.slow
CLIENTS = 64
ROUNDS = 2


async def _client(server: Server, i: int, results: list) -> None:
    client = server.async_client()
    try:
        for r in range(ROUNDS):
            kw = {
                "model": server.model,
                "messages": [{"role": "user", "content": f"client {i} round {r}: hello"}],
                "max_tokens": 4 + (i % 9),
                "temperature": (i % 4) * 0.4,
                "seed": i,
            }
            if i % 7 == 0:
                kw["stop"] = ["a"]
            try:
                if i % 2:
                    text = ""
                    async for c in await client.chat.completions.create(stream=True, **kw):
                        if c.choices:
                            text += c.choices[0].delta.content or ""
                    results.append(("ok", i))
                else:
                    reply = await client.chat.completions.create(**kw)
                    assert reply.usage.completion_tokens <= kw["max_tokens"]
                    results.append(("ok", i))
            except openai.APIStatusError as e:
                results.append((e.status_code, i))
            except openai.APIError as e:
                results.append((type(e).__name__, i))
    finally:
        await client.close()


async def _load(server: Server) -> tuple[list, int]:
    results: list = []
    busiest = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal busiest
        async with httpx.AsyncClient(timeout=10) as h:
            while not done.is_set():
                busiest = max(busiest, (await h.get(f"{server.url}/health")).json()["running"])
                await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.wait_for(asyncio.gather(*(_client(server, i, results) for i in range(CLIENTS))), timeout=240)
    finally:
        done.set()
        await watcher
    return results, busiest


def test_load_64_clients(api: Server) -> None:
    start = time.monotonic()
    results, busiest = asyncio.run(_load(api))
    failures = [r for r in results if r[0] != "ok"]
    assert len(results) == CLIENTS * ROUNDS
    assert not failures, f"{len(failures)} failed requests, e.g. {failures[:5]}"
    assert api.proc.poll() is None, "the server process died"
    health = httpx.get(f"{api.url}/health", timeout=10).json()
    assert health["status"] == "ok" and health["running"] == 0 and health["waiting"] == 0
    assert busiest > 1, "concurrent requests were served one at a time"
    print(
        f"load: {len(results)} requests from {CLIENTS} clients in {time.monotonic() - start:.1f} s, "
        f"max {busiest} in one batch"
    )
