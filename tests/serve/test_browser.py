"""``glmtune webui`` in a real browser: Debian's chromium, headless, driven by playwright.

The test installs chromium with apt when it is missing (CI runs as root with the Debian registry) and skips,
saying why, only when that is impossible. The page is loaded, a message sent, the streamed answer observed and
a screenshot kept in ``test-artifacts/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.serve.conftest import REPO, free_port, start_cli, stop
from tests.serve.scripted import GREETING, GREETING_ANSWER, Scripted

pytestmark = pytest.mark.slow
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO / "test-artifacts"
# Records every text the last bot message shows, so the test can see the answer grow.
OBSERVE = """() => {
  window.__seen = [];
  const record = () => {
    const bots = document.querySelectorAll('#chatbot .message.bot, #chatbot [data-testid="bot"]');
    const last = bots[bots.length - 1];
    const text = last ? last.innerText.trim() : '';
    if (text && window.__seen[window.__seen.length - 1] !== text) window.__seen.push(text);
  };
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


def chromium() -> str:
    """Path of the chromium binary, installed with apt when missing; skips with the reason otherwise."""
    found = shutil.which("chromium") or (Path("/usr/bin/chromium").is_file() and "/usr/bin/chromium")
    if found:
        return str(found)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and cannot be installed here (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "install", "-y", "chromium"],
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "chromium"],
    ):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, timeout=600)
        except subprocess.TimeoutExpired:
            continue
        if cmd[1] == "install" and done.returncode == 0 and shutil.which("chromium"):
            return str(shutil.which("chromium"))
    pytest.skip("chromium is missing and `apt-get install -y chromium` failed (no reachable Debian registry?)")


@pytest.fixture(scope="module")
def webui(chatglm3_scripted: Scripted, scripted_root: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_cli(
        [
            "webui",
            str(chatglm3_scripted.base),
            "--adapter",
            str(chatglm3_scripted.adapter),
            "--port",
            str(port),
            "--temperature",
            "0",
            "--max-tokens",
            "64",
        ],
        scripted_root / "webui.log",
        url,
        deadline_s=120,
        path="/",
    )
    yield url
    stop(proc)


def test_chat_in_chromium(webui: str, tmp_path: Path) -> None:
    executable = chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (dev extra) is missing")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "webui-chat.png"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=executable, headless=True, args=CHROMIUM_FLAGS, timeout=60_000
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(webui, wait_until="load")
            page.locator("#message textarea").wait_for()
            page.evaluate(OBSERVE)
            page.locator("#message textarea").fill(GREETING)
            page.locator("#send").click()
            page.locator("#chatbot").get_by_text(GREETING_ANSWER).wait_for()
            page.screenshot(path=str(shot), full_page=True)
            seen = [s for s in page.evaluate("window.__seen") if not s.lower().startswith("loading")]
            assert seen and seen[-1] == GREETING_ANSWER, seen
            assert all(GREETING_ANSWER.startswith(s) for s in seen), seen  # every state shown was a prefix ...
            assert len(seen) > 1, seen  # ... and there were several: the answer streamed into the page
            assert page.locator("#chatbot").get_by_text(GREETING, exact=True).count() >= 1
            page.locator("#regenerate").click()
            page.locator("#chatbot").get_by_text(GREETING_ANSWER).wait_for()
            page.locator("#clear").click()
            page.locator("#chatbot").get_by_text(GREETING_ANSWER).wait_for(state="detached")
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
