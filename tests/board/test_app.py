"""The board page builds with every field, the run panel and the plots; the CLI command exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from glmtune.board.app import build_board, default_config_roots
from glmtune.board.form import FIELDS
from glmtune.board.session import Board
from tests.board.conftest import REPO


def test_page_builds(tmp_path: Path) -> None:
    board = Board(tmp_path / "board", config_roots=default_config_roots(), cwd=REPO)
    assert str(REPO / "configs" / "chatglm3" / "lora.yaml") in board.config_choices()
    config = build_board(board).get_config_file()
    ids = {c.get("props", {}).get("elem_id") for c in config["components"]}
    assert {f.elem_id for f in FIELDS} <= ids
    assert {f"{f.elem_id}__error" for f in FIELDS} <= ids
    assert {"run_name", "start_from", "load_yaml", "check", "launch", "yaml_view", "save_yaml", "other"} <= ids
    assert {"run_pick", "stop", "resume", "run_status", "run_curve", "run_log", "runs_table", "compare_curve"} <= ids


def test_cli_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "glmtune.cli", "board", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "--workdir" in done.stdout and "127.0.0.1" in done.stdout
