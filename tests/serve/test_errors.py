"""Client mistakes get a 4xx JSON error in OpenAI's shape, through the real client and as raw HTTP."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.serve.conftest import MAX_BODY, Server

pytestmark = pytest.mark.slow
HELLO = [{"role": "user", "content": "hello"}]


def assert_error(r: httpx.Response, status: int, code: str | None = None, param: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["type"] in ("invalid_request_error", "rate_limit_error")
    if code is not None:
        assert err["code"] == code
    if param is not None:
        assert err["param"] == param
    return err


def test_api_key(api: Server) -> None:
    with pytest.raises(openai.AuthenticationError) as e:
        api.client(api_key="sk-wrong").chat.completions.create(model=api.model, messages=HELLO)
    assert e.value.status_code == 401 and e.value.code == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        api.client(api_key="sk-wrong").models.list()
    assert_error(httpx.get(f"{api.url}/v1/models", timeout=10), 401, "invalid_api_key")
    assert_error(httpx.get(f"{api.url}/v1/models", headers={"Authorization": "Basic abc"}, timeout=10), 401)
    assert_error(httpx.get(f"{api.url}/anything", timeout=10), 401)  # every route but /health
    assert httpx.get(f"{api.url}/health", timeout=10).status_code == 200


def test_invalid_json(api: Server) -> None:
    assert_error(api.post('{"model": "chatglm3", "messages": ['), 400, "invalid_json")
    assert_error(api.post(b"\xff\xfe not json"), 400)
    assert_error(api.post(""), 400)
    assert_error(api.post("[1, 2]"), 400)


@pytest.mark.parametrize(
    "patch, param",
    [
        ({"messages": "hello"}, "messages"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content.str"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": 3}, "temperature"),
        ({"top_p": -1}, "top_p"),
        ({"max_tokens": "5"}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"stream": "yes"}, "stream"),
        ({"seed": 1.5}, "seed"),
        ({"stop": 7}, None),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"n": 2}, "n"),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tools.0.function.name"),
        ({"tools": [{"type": "function"}]}, "tools.0.function"),
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
                        ],
                    }
                ]
            },
            "messages.0.tool_calls.0.function.arguments",
        ),
        ({"model": None}, "model"),
    ],
)
def test_wrong_types(api: Server, patch: dict, param: str | None) -> None:
    body = {"model": api.model, "messages": HELLO, "max_tokens": 2, **patch}
    err = assert_error(api.post(json.dumps(body)), 400)
    if param is not None:
        assert err["param"] == param, err


def test_wrong_types_through_client(api: Server) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        api.client().chat.completions.create(model=api.model, messages=[{"role": "wizard", "content": "x"}])
    assert e.value.status_code == 400 and e.value.param == "messages.0.role"


def test_unknown_model(api: Server) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        api.client().chat.completions.create(model="gpt-4o", messages=HELLO)
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        api.client().models.retrieve("gpt-4o")


def test_oversized_body(api: Server) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        api.client().chat.completions.create(model=api.model, messages=[{"role": "user", "content": "x" * MAX_BODY}])
    assert e.value.status_code == 413 and e.value.code == "request_too_large"

    def chunks():  # no Content-Length: the guard counts the streamed body
        for _ in range(MAX_BODY // 8192 + 2):
            yield b" " * 8192

    r = httpx.post(
        f"{api.url}/v1/chat/completions",
        content=chunks(),
        timeout=30,
        headers={"Authorization": f"Bearer {api.api_key}", "Content-Type": "application/json"},
    )
    assert_error(r, 413, "request_too_large")


def test_too_many_tokens(api: Server) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        api.client().chat.completions.create(model=api.model, messages=HELLO, max_tokens=10**6)
    assert e.value.code == "context_length_exceeded" and e.value.param == "max_tokens"
    with pytest.raises(openai.BadRequestError) as e:
        api.client().chat.completions.create(model=api.model, messages=[{"role": "user", "content": "hello " * 3000}])
    assert e.value.code == "context_length_exceeded" and e.value.param == "messages"


def test_unknown_route_and_method(api: Server) -> None:
    h = {"Authorization": f"Bearer {api.api_key}"}
    assert_error(httpx.get(f"{api.url}/v1/nothing", headers=h, timeout=10), 404, "unknown_url")
    assert_error(httpx.get(f"{api.url}/v1/chat/completions", headers=h, timeout=10), 405)


def test_server_still_healthy(api: Server) -> None:
    assert api.proc is not None and api.proc.poll() is None
    r = api.client().chat.completions.create(model=api.model, messages=HELLO, max_tokens=2)
    assert r.usage.completion_tokens <= 2
