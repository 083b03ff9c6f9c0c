"""After a run: evaluate a checkpoint as `glmtune eval` does, chat with it, export it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from glmtune.board.session import Board
from glmtune.errors import GlmtuneError
from tests.board.conftest import DEV, REPO, run_values, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Board, str]]:
    board = Board(tmp_path_factory.mktemp("after") / "board", cwd=REPO)
    checked, _ = board.launch(run_values(tiny, steps=4), "done")
    assert checked.ok, checked.errors
    wait_for(board, "done", lambda v: v.status == "finished")
    yield board, "done"
    board.chat.close()


def test_evaluate_as_glmtune_eval(trained: tuple[Board, str], capsys: pytest.CaptureFixture) -> None:
    from glmtune.commands.evaluate import run_evaluate

    board, name = trained
    output = Path(board.runs.record(name).output_dir)
    assert board.checkpoints(name) == [str(output), str(output / "checkpoint-4")]
    assert board.eval_data(name).endswith("chatglm3_conversations.json")  # no eval file: the training data
    metrics, rows, message = board.evaluate(name, str(output), str(DEV), "finetune-demo", 4, 8)
    written = board.runs.run_dir(name) / "predictions-done.jsonl"
    assert message == f"{len(rows)} predictions written to {written}" and written.is_file()
    assert len(rows) == len(json.loads(DEV.read_text(encoding="utf-8")))
    run_evaluate(
        model=output, predictions=None, data=DEV, adapter=None, variant="finetune-demo", batch_size=4, max_new_tokens=8
    )
    assert json.loads(capsys.readouterr().out) == metrics  # the same numbers as the command line
    with pytest.raises(GlmtuneError, match="no such file"):
        board.evaluate(name, str(output), "missing.json", "finetune-demo", 4, 8)


def test_chat_with_the_checkpoint(trained: tuple[Board, str]) -> None:
    board, name = trained
    shown = list(board.chat.submit("hi", [], 8, 0.0))[-1][1]  # nothing loaded yet: the chat says so
    assert "load a checkpoint" in shown[-1]["content"]
    ckpt = board.checkpoints(name)[1]
    assert board.chat.load(ckpt).startswith(f"chatting with {ckpt} (ChatGLM3")
    updates = list(board.chat.submit("你好", [], 12, 0.0))
    box, shown, history = updates[-1]
    assert box == "" and history == shown and history[0] == {"role": "user", "content": "你好"}
    assert history[1]["role"] == "assistant" and history[1]["content"]
    again = list(board.chat.submit("你好", [], 12, 0.0))[-1][2]
    assert again == history  # greedy: the same answer


def test_export_both_layouts(trained: tuple[Board, str], tmp_path: Path) -> None:
    board, name = trained
    ckpt = board.checkpoints(name)[0]
    message = board.export(ckpt, str(tmp_path / "native"), "native", "keep", False)
    assert message == f"wrote native ChatGLM3-6B checkpoint to {tmp_path / 'native'}"
    assert (tmp_path / "native" / "config.json").is_file()
    with pytest.raises(GlmtuneError):
        board.export(ckpt, str(tmp_path / "native"), "native", "keep", False)  # there already: not replaced
    board.export(ckpt, str(tmp_path / "original"), "original", "fp32", False)
    config = json.loads((tmp_path / "original" / "config.json").read_text())
    assert config["model_type"] == "chatglm"
    with pytest.raises(GlmtuneError, match="output directory"):
        board.export(ckpt, "  ", "native", "keep", False)
