"""Real servers on 127.0.0.1 for the serve tests: the ``glmtune serve`` CLI in a subprocess, or uvicorn in a thread.

Every server is shut down by its fixture; every wait has a deadline, so a broken server fails a test instead of
hanging it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from tests.serve.scripted import Scripted, make_scripted

REPO = Path(__file__).resolve().parents[2]
API_KEY = "sk-test-0123456789"
MAX_BODY = 256 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, deadline_s: float, alive: object = None, path: str = "/health") -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if alive is not None and not alive():
            raise RuntimeError("server process exited during startup")
        try:
            if httpx.get(f"{url}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not become healthy in {deadline_s:.0f} s")


@dataclass
class Server:
    url: str
    model: str
    api_key: str = "unused"
    proc: subprocess.Popen | None = None
    engine: object = None  # the in-process engine behind a ThreadServer (what ``glmtune chat`` would use)

    def client(self, **kw: object) -> openai.OpenAI:
        kw.setdefault("api_key", self.api_key)
        return openai.OpenAI(base_url=f"{self.url}/v1", max_retries=0, timeout=60, **kw)

    def async_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=self.api_key, max_retries=0, timeout=60)

    def post(self, body: str | bytes, **headers: str) -> httpx.Response:
        h = {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json", **headers}
        return httpx.post(f"{self.url}/v1/chat/completions", content=body, headers=h, timeout=60)


def start_cli(args: list[str], log: Path, url: str, deadline_s: float = 180, path: str = "/health") -> subprocess.Popen:
    """Start ``python -m glmtune.cli ARGS`` and wait until ``url`` + ``path`` answers 200."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "glmtune.cli", *args], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_healthy(url, deadline_s, alive=lambda: proc.poll() is None, path=path)
    except Exception:
        stop(proc)
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"glmtune {' '.join(args)} did not start:\n{tail}") from None
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="session")
def scripted_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-models")


@pytest.fixture(scope="session")
def chatglm3_scripted(scripted_root: Path) -> Scripted:
    return make_scripted("chatglm3", scripted_root)


@pytest.fixture(scope="session")
def glm4_scripted(scripted_root: Path) -> Scripted:
    return make_scripted("glm4", scripted_root)


@pytest.fixture(scope="session")
def api(chatglm3_scripted: Scripted, scripted_root: Path) -> Iterator[Server]:
    """``glmtune serve`` (subprocess) on the scripted ChatGLM3 base + LoRA adapter, with an API key (and two
    allowed Host names besides loopback)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_cli(
        [
            "serve",
            str(chatglm3_scripted.base),
            "--adapter",
            str(chatglm3_scripted.adapter),
            "--port",
            str(port),
            "--api-key",
            API_KEY,
            "--temperature",
            "0",
            "--max-tokens",
            "64",
            "--max-body-bytes",
            str(MAX_BODY),
            "--max-batch-size",
            "16",
            "--log-level",
            "warning",
            "--allowed-hosts",
            "proxy.example, .corp.example",
        ],
        scripted_root / "serve-chatglm3.log",
        url,
    )
    yield Server(url=url, model=chatglm3_scripted.base.name, api_key=API_KEY, proc=proc)
    stop(proc)


class ThreadServer:
    """uvicorn serving ``create_app`` in a daemon thread of the test process."""

    def __init__(self, model: Path, adapter: Path | None, name: str, **app_options: object) -> None:
        import uvicorn

        from glmtune.serve.app import create_app
        from glmtune.serve.openai_format import Defaults
        from glmtune.serve.server import build

        self.engine, self.batcher = build(model, adapter, max_batch_size=8)
        app = create_app(self.batcher, name, defaults=Defaults(temperature=0.0, max_tokens=64), **app_options)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_healthy(self.url, 30)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.batcher.close()


@pytest.fixture(scope="session")
def glm4_api(glm4_scripted: Scripted) -> Iterator[Server]:
    ts = ThreadServer(glm4_scripted.base, glm4_scripted.adapter, "glm4-tiny")
    yield Server(url=ts.url, model="glm4-tiny")
    ts.close()


@pytest.fixture(scope="session")
def tiny_dir(scripted_root: Path) -> Callable[[str], Path]:
    """A plain tiny checkpoint of a family, made once per session."""
    from glmtune.model.tiny import make_tiny

    made: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in made:
            made[family] = make_tiny(family, scripted_root / f"plain-{family}")
        return made[family]

    return get


@pytest.fixture(scope="session", params=["chatglm2", "chatglm"])
def no_tools_api(request: pytest.FixtureRequest, tiny_dir: Callable[[str], Path]) -> Iterator[Server]:
    """ChatGLM2-6B and ChatGLM-6B (its own model class: dynamic batching) servers; neither has tools."""
    ts = ThreadServer(tiny_dir(request.param), None, f"{request.param}-tiny")
    yield Server(url=ts.url, model=f"{request.param}-tiny")
    ts.close()
