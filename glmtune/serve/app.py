"""The FastAPI app: ``/v1/models``, ``/v1/chat/completions`` (JSON or SSE stream) and ``/health``.

Requests are validated and rendered here, then handed to the :class:`~glmtune.serve.batcher.Batcher`, which
batches all concurrent requests on one model. A pure ASGI guard in front checks the API key (every path but
``/health``) and the body size before anything is parsed.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from glmtune.infer.engine import Reply
from glmtune.serve.batcher import Batcher, Job, QueueFull
from glmtune.serve.errors import APIError, error_body, error_response, install_handlers
from glmtune.serve.hosts import HostPolicy, host_name, host_policy
from glmtune.serve.limits import longest_token_chars
from glmtune.serve.openai_format import Defaults, chunk, completion, new_id, prepare, tool_calls_json, usage
from glmtune.serve.schemas import ChatCompletionRequest

OPEN_PATHS = frozenset({"/health"})


class Guard:
    """Host (DNS rebinding), API key (``Authorization: Bearer``) and request-size checks, in OpenAI's error shape."""

    def __init__(self, app: ASGIApp, api_key: str | None, max_body_bytes: int, hosts: HostPolicy) -> None:
        self.app, self.api_key, self.max_body, self.hosts = app, api_key, max_body_bytes, hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host")
        if not self.hosts.allows(None if host is None else host.decode("latin-1")):
            await self._drain(receive)
            name = host_name(host.decode("latin-1")) if host else ""
            msg = (
                f"Host {name!r} is not allowed: this server answers loopback host names only "
                "(set an API key, or list the name in --allowed-hosts)."
            )
            await error_response(APIError(403, msg, code="host_not_allowed"))(scope, receive, send)
            return
        if self.api_key and scope["path"] not in OPEN_PATHS:
            auth = headers.get(b"authorization", b"").decode("latin-1")
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), self.api_key.encode()):
                await self._drain(receive)
                msg = "Incorrect API key provided." if auth else "Missing API key: send 'Authorization: Bearer KEY'."
                await error_response(APIError(401, msg, code="invalid_api_key"))(scope, receive, send)
                return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._drain(receive)
            await self._too_large(scope, receive, send)
            return
        if length is None and scope.get("method") in ("POST", "PUT", "PATCH"):
            body, ok = await self._read(receive)
            if not ok:
                await self._too_large(scope, receive, send)
                return
            receive = _replay(body, receive)
        await self.app(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        err = APIError(413, f"Request body too large: the limit is {self.max_body} bytes.", code="request_too_large")
        await error_response(err)(scope, receive, send)

    async def _read(self, receive: Receive) -> tuple[bytes, bool]:
        """The whole (chunked) body, or (b"", False) once it exceeds the limit (the rest is drained)."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"", False
            size += len(message.get("body", b""))
            if size > self.max_body:
                await self._drain(receive, message)
                return b"", False
            parts.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(parts), True

    async def _drain(self, receive: Receive, message: Message | None = None, cap: int = 64 << 20) -> None:
        """Read (and drop) the body so the client sees the error instead of a reset connection."""
        seen = 0
        while message is None or (message["type"] == "http.request" and message.get("more_body")):
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > cap:
                return


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def create_app(
    batcher: Batcher,
    model_name: str,
    api_key: str | None = None,
    max_body_bytes: int = 8 << 20,
    defaults: Defaults | None = None,
    allowed_hosts: list[str] | None = None,
    bind_host: str = "127.0.0.1",
) -> FastAPI:
    """The OpenAI-compatible app serving ``batcher``'s engine as ``model_name``; ``allowed_hosts``: Host names
    answered besides loopback and ``bind_host`` (``*``: any; the default without ``api_key`` is none)."""
    engine = batcher.engine
    defaults = defaults or Defaults()
    longest_token_chars(engine.tokenizer)  # once, here: the early prompt-length bound of large requests uses it
    created_at = int(time.time())
    app = FastAPI(title="glmtune", docs_url=None, redoc_url=None, openapi_url=None)
    install_handlers(app)
    hosts = host_policy(api_key, allowed_hosts, bind_host)
    app.add_middleware(Guard, api_key=api_key, max_body_bytes=max_body_bytes, hosts=hosts)
    model_card = {"id": model_name, "object": "model", "created": created_at, "owned_by": "glmtune"}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": model_name,
            "family": engine.family.name,
            "running": batcher.running,
            "waiting": batcher.waiting,
            "completed": batcher.completed,
        }

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> dict[str, Any]:
        if model_id != model_name:
            raise APIError(404, f"The model '{model_id}' does not exist.", param="model", code="model_not_found")
        return model_card

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(req: ChatCompletionRequest, request: Request) -> Any:
        if req.model != model_name:
            raise APIError(
                404,
                f"The model '{req.model}' does not exist (this server serves '{model_name}').",
                param="model",
                code="model_not_found",
            )
        prep = await run_in_threadpool(prepare, req, engine, batcher.context, defaults)
        try:
            job = batcher.submit(
                prep.prompt,
                prep.params,
                prep.tools_available,
                prep.presence_penalty,
                prep.frequency_penalty,
                loop=asyncio.get_running_loop(),
                starts=prep.starts,
                starts_after=prep.starts_after,
                json=prep.json,
            )
        except QueueFull as e:
            raise APIError(429, f"The server is busy ({e}); retry later.", code="queue_full") from None
        cid, created = new_id("chatcmpl-"), int(time.time())
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return EventSourceResponse(_sse(job, cid, created, model_name, include_usage), sep="\n", ping=15)
        try:
            reply = await _unless_disconnected(job, request)
        except RuntimeError as e:
            raise APIError(500, str(e), type="server_error") from None
        finally:
            job.cancel()  # no-op once finished; stops generation when the client went away
        if reply is None:  # nobody is listening: answer nothing (the connection is gone)
            return Response(status_code=499)
        return completion(reply, cid, created, model_name)

    return app


async def _unless_disconnected(job: Job, request: Request) -> Reply | None:
    """``job``'s reply, or None as soon as the client disconnects (the job is cancelled at once, so its row
    leaves the batch at the next scheduler step instead of generating for nobody up to ``max_tokens``)."""

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    result, watch = asyncio.ensure_future(job.result()), asyncio.ensure_future(gone())
    try:
        await asyncio.wait({result, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not result.done():
            job.cancel()
            result.cancel()
    return result.result() if result.done() and not result.cancelled() else None


async def _sse(job: Job, cid: str, created: int, model: str, include_usage: bool) -> AsyncIterator[str]:
    """``data:`` payloads of a streamed completion, ending with ``[DONE]``."""

    def dump(body: dict[str, Any]) -> str:
        if include_usage and "usage" not in body:
            body["usage"] = None
        return json.dumps(body, ensure_ascii=False)

    try:
        yield dump(chunk(cid, created, model, {"role": "assistant", "content": ""}))
        async for kind, value in job.events():
            if kind == "delta":
                yield dump(chunk(cid, created, model, {"content": value}))
            elif kind == "reasoning":
                yield dump(chunk(cid, created, model, {"reasoning_content": value}))
            elif kind == "done":
                reply: Reply = value
                for i, call in enumerate(tool_calls_json(reply.tool_calls)):
                    yield dump(chunk(cid, created, model, {"tool_calls": [{"index": i, **call}]}))
                yield dump(chunk(cid, created, model, {}, reply.finish_reason))
                if include_usage:
                    yield dump(
                        {
                            "id": cid,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model,
                            "choices": [],
                            "usage": usage(reply),
                        }
                    )
            else:
                yield json.dumps(error_body(str(value), "server_error"))
        yield "[DONE]"
    finally:
        job.cancel()
