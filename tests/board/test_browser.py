"""``glmtune board`` in a real browser (headless Debian chromium, driven by playwright), one whole tiny run.

From the page only: load a shipped YAML, see a bad model path named next to its field, fix it, save the YAML,
preview the samples, train to completion while the curve updates, stop and resume a second run, overlay both
curves, then evaluate, chat with and export the result. Screenshots go to ``test-artifacts/board-*.png``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from glmtune.train.resume import step_of as step_of_checkpoint
from tests.board.conftest import DEV, REPO, hold_at_checkpoint, release
from tests.serve.conftest import free_port, start_cli, stop
from tests.serve.test_browser import CHROMIUM_FLAGS, chromium

pytestmark = pytest.mark.slow
ARTIFACTS = REPO / "test-artifacts"
STEP = re.compile(r"step (\d+)/(\d+)")
WAIT_MS = 240_000


@pytest.fixture(scope="module")
def board_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    work = tmp_path_factory.mktemp("board-browser")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["board", "--workdir", str(work / "runs"), "--port", str(port)]
    proc = start_cli(args, work / "board.log", url, deadline_s=180, path="/")
    yield url, work
    stop(proc)


def fill(page: Any, elem_id: str, value: Any) -> None:
    """Type into a textbox or number field; blurring it sends the value to the server."""
    box = page.locator(f"#{elem_id} textarea, #{elem_id} input").first
    box.fill(str(value))
    box.blur()


def choose(page: Any, elem_id: str, value: str) -> None:
    """Pick ``value`` in a dropdown."""
    page.locator(f"#{elem_id} input").first.click()
    page.get_by_role("option", name=value, exact=True).click()


def tab(page: Any, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def step_of(page: Any) -> tuple[int, int]:
    found = STEP.search(page.locator("#run_status").inner_text())
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def wait_status(page: Any, run: str, status: str, timeout_ms: int = WAIT_MS) -> None:
    page.locator("#run_status").get_by_text(re.compile(rf"^{re.escape(run)}: {status}")).wait_for(timeout=timeout_ms)


def wait_text(page: Any, selector: str, *texts: str, timeout_s: float = 60) -> None:
    """Wait until the element's text holds every one of ``texts``."""
    end = time.monotonic() + timeout_s
    while not all(t in (shown := page.locator(selector).inner_text()) for t in texts):
        assert time.monotonic() < end, f"{selector} shows {shown!r}, not {texts}"
        time.sleep(0.2)


def shot(page: Any, name: str, locator: Any = None) -> Path:
    path = ARTIFACTS / f"board-{name}.png"
    (locator or page).screenshot(path=str(path), **({} if locator else {"full_page": True}))
    return path


def test_a_whole_run_from_the_page(board_url: tuple[str, Path], tiny: Path) -> None:
    url, work = board_url
    executable = chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package (dev extra) is missing")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            str(work / "profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_FLAGS,
            timeout=60_000,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(120_000)
            page.goto(url, wait_until="load")
            drive(page, work, tiny)
        finally:
            browser.close()


def drive(page: Any, work: Path, tiny: Path) -> None:
    t0 = time.monotonic()

    def phase(name: str) -> None:  # the time each part took shows on failure (or with -s)
        print(f"[{time.monotonic() - t0:6.1f} s] {name}", flush=True)

    # ---- configure: start from a shipped YAML; a bad model path is named next to its field
    config = REPO / "configs" / "chatglm3" / "lora.yaml"
    start = page.locator("#start_from input").first
    start.fill(str(config))
    start.press("Enter")
    page.locator("#load_yaml").click()
    page.locator("#load_message").get_by_text(f"loaded {config}").wait_for()
    page.locator("#yaml_view").get_by_text("lora_alpha: 32").wait_for()
    fill(page, "run_name", "first")
    fill(page, "model__path", work / "no-such-model")
    page.locator("#check").click()
    page.locator("#model__path__error").get_by_text("no such directory").wait_for()
    shot(page, "configure-error")
    fill(page, "model__path", tiny)
    for elem_id, value in {
        "data__max_length": 128,
        "training__max_steps": 6,
        "training__learning_rate": 0.01,
        "training__logging_steps": 1,
        "training__save_steps": 3,
        "training__eval_steps": 3,
    }.items():
        fill(page, elem_id, value)
    page.locator("#check").click()
    page.locator("#launch_message").get_by_text("ready to start").wait_for()
    page.locator("#model__path__note").get_by_text("ChatGLM3-6B").wait_for()
    assert page.locator("#model__path__error").is_hidden()
    page.locator("#yaml_view").get_by_text("max_steps: 6").wait_for()
    fill(page, "save_path", work / "first.yaml")
    page.locator("#save_yaml").click()
    page.locator("#save_message").get_by_text("saved").wait_for()
    assert "max_steps: 6" in (work / "first.yaml").read_text(encoding="utf-8")
    shot(page, "configure")

    phase("configured")

    # ---- preview: rendered samples with their loss mask, and the statistics
    tab(page, "Preview")
    page.locator("#preview_btn").click()
    page.locator("#preview_stats").get_by_text("40 training samples").wait_for()
    assert page.locator("#preview_samples h4").count() == 3
    assert page.locator("#preview_samples .tok.loss").count() > 0
    shot(page, "preview")

    phase("previewed")

    # ---- run: train to completion, watching the curve grow
    tab(page, "Configure")
    page.locator("#launch").click()
    page.locator("#run_status").get_by_text(re.compile(r"^first: (starting|running)")).wait_for()
    curve = page.locator("#run_curve")
    image = curve.locator("img")
    held = hold_at_checkpoint(work / "runs" / "first", 6)  # suspended mid-run: the page shows a partial curve
    deadline = time.monotonic() + 60
    while step_of(page)[0] < (step_of_checkpoint(held) or 0):
        assert time.monotonic() < deadline, page.locator("#run_status").inner_text()
        time.sleep(0.2)
    image.first.wait_for()
    time.sleep(2.5)  # the page refreshes every second: it has drawn every point the frozen run logged
    early = image.first.get_attribute("src")
    early_step = step_of(page)[0]
    assert 0 < early_step < 6
    shot(page, "curve-early", curve)
    release(work / "runs" / "first")
    wait_status(page, "first", "finished")
    assert step_of(page) == (6, 6)
    time.sleep(2.5)
    late = image.first.get_attribute("src")
    shot(page, "curve-late", curve)
    assert early and late and early != late  # the curve was redrawn as the run went on
    shot(page, "run")

    phase("first run finished")

    # ---- a second run: stop it after a checkpoint, resume it, compare the two
    tab(page, "Configure")
    assert page.locator("#run_name textarea, #run_name input").first.input_value() == "first-2"
    fill(page, "training__max_steps", 8)
    fill(page, "training__save_steps", 2)
    page.locator("#launch").click()
    page.locator("#run_status").get_by_text(re.compile(r"^first-2: (starting|running)")).wait_for()
    hold_at_checkpoint(work / "runs" / "first-2", 8)  # suspended after a checkpoint: it cannot finish first
    page.locator("#stop").click()
    page.locator("#run_message").get_by_text("stopped first-2").wait_for()
    wait_status(page, "first-2", "stopped", 10_000)
    assert 0 < step_of(page)[0] < 8
    page.locator("#resume").click()
    page.locator("#run_message").get_by_text(re.compile(r"resumed first-2 from checkpoint-\d+")).wait_for()
    wait_status(page, "first-2", "finished")
    assert step_of(page) == (8, 8)
    page.locator("#compare_pick").get_by_label("first", exact=True).check()
    wait_text(page, "#runs_table", "8/8", "6/6")
    time.sleep(1.5)
    shot(page, "compare", page.locator("#compare_curve"))
    shot(page, "runs")

    phase("second run stopped, resumed, finished")

    # ---- after: evaluate, chat, export the first run
    tab(page, "After")
    choose(page, "after_run", "first")
    page.locator("#eval_data textarea, #eval_data input").first.wait_for()
    assert page.locator("#eval_data textarea, #eval_data input").first.input_value() == str(DEV)
    fill(page, "eval_tokens", 16)
    page.locator("#eval_btn").click()
    page.locator("#eval_message").get_by_text("predictions written to").wait_for()
    page.locator("#eval_metrics").get_by_text("rouge-1").wait_for()
    page.locator("#chat_load").click()
    page.locator("#chat_status").get_by_text("chatting with").wait_for()
    fill(page, "chat_box", "你好")
    page.locator("#chat_send").click()
    page.locator("#chat_bot").get_by_text("你好", exact=True).wait_for()
    bots = page.locator('#chat_bot .message.bot, #chat_bot [data-testid="bot"]')
    bots.first.wait_for()
    deadline = time.monotonic() + 60
    while not bots.last.inner_text().strip() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert bots.last.inner_text().strip()
    fill(page, "export_dir", work / "exported")
    page.locator("#export_btn").click()
    page.locator("#export_message").get_by_text("wrote native ChatGLM3-6B checkpoint").wait_for()
    assert (work / "exported" / "config.json").is_file()
    shot(page, "after")
    phase("evaluated, chatted, exported")
