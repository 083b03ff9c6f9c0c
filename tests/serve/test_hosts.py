"""DNS rebinding: without an API key only loopback Host names are answered; --allowed-hosts adds others."""

from __future__ import annotations

import httpx
import pytest

from glmtune.serve.hosts import host_name, host_policy
from tests.serve.conftest import Server
from tests.serve.test_errors import assert_error

ROUTES = ["/health", "/v1/models"]


def _get(server: Server, path: str, host: str) -> httpx.Response:
    headers = {"Host": host, "Authorization": f"Bearer {server.api_key}"}
    return httpx.get(f"{server.url}{path}", headers=headers, timeout=10)


@pytest.mark.slow
def test_without_a_key_only_loopback_names(glm4_api: Server) -> None:
    port = glm4_api.url.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST.", f"[::1]:{port}", "app.localhost", "127.1.2.3"):
        for path in ROUTES:
            assert _get(glm4_api, path, host).status_code == 200, (host, path)
    for host in (f"evil.example:{port}", "localhost.evil.example", "127.0.0.1.evil.example", "192.168.1.20"):
        for path in ROUTES:
            err = assert_error(_get(glm4_api, path, host), 403, "host_not_allowed")
            assert "--allowed-hosts" in err["message"]
    r = httpx.post(
        f"{glm4_api.url}/v1/chat/completions",
        headers={"Host": "evil.example"},
        json={"model": glm4_api.model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        timeout=30,
    )
    assert_error(r, 403, "host_not_allowed")


@pytest.mark.slow
def test_allowed_hosts_option(api: Server) -> None:
    """``glmtune serve --allowed-hosts 'proxy.example, .corp.example'`` (with a key: the list is what counts)."""
    for host in ("proxy.example", "proxy.example:443", "corp.example", "llm.corp.example", "127.0.0.1"):
        assert _get(api, "/v1/models", host).status_code == 200, host
    for host in ("evil.example", "notcorp.example", "proxy.example.evil"):
        assert_error(_get(api, "/v1/models", host), 403, "host_not_allowed")


def test_policy() -> None:
    assert host_name("[::1]:8000") == "::1" and host_name("Example.COM.:80") == "example.com"
    assert host_policy("key", None).allows("anything.example")  # a key guards the server
    assert not host_policy(None, None).allows("anything.example")
    assert host_policy(None, ["*"]).allows("anything.example")
    assert host_policy(None, None, bind_host="10.0.0.5").allows("10.0.0.5:8000")
    assert not host_policy(None, None, bind_host="0.0.0.0").allows("0.0.0.0")
    assert host_policy(None, None).allows(None)  # HTTP/1.0 without Host is no browser
