"""The preview shows what `preprocess --show/--stats` print, from the code training uses."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest

from glmtune.board.session import Board
from tests.board.conftest import DATA, run_values


def test_preview_matches_preprocess(board: Board, tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from glmtune.commands.preprocess import run_preprocess
    from glmtune.data.preprocess import model_tokenizer
    from glmtune.data.show import render_sample

    checked, shown, stats = board.preview(run_values(tiny), "p", 2)
    assert checked.ok, checked.errors
    assert shown.count("<h4>sample ") == 2 and "tokens and loss mask" in shown
    assert re.search(r'class="tok loss" title="id \d+, label \d+"', shown)  # trained-on tokens ...
    assert re.search(r'class="tok special" title="id \d+, label -100">\[gMASK\]', shown)  # ... and the prompt's

    options = {"fmt": None, "columns": None, "mode": "default", "eval_": False, "family": None, "split": None}
    options |= {"skip_invalid": False, "show": 0, "num_proc": None, "cache": False, "max_length": 128}
    run_preprocess(model=tiny, output=tmp_path / "ids.jsonl", data=[DATA], stats=True, **options)
    printed = capsys.readouterr().out.strip()
    assert printed in stats and stats.startswith("**40 training samples**")

    tokenizer, _ = model_tokenizer(tiny, None)
    import json

    first = json.loads((tmp_path / "ids.jsonl").read_text(encoding="utf-8").splitlines()[0])
    pre = re.search(r"<pre>(.*?)</pre>", shown, re.S).group(1)
    assert html.unescape(re.sub(r"<[^>]+>", "", pre)).strip() == render_sample(first, tokenizer).plain.strip()


def test_preview_of_a_bad_form_says_which_field(board: Board, tiny: Path, tmp_path: Path) -> None:
    checked, shown, stats = board.preview(run_values(tiny, **{"data.train": str(tmp_path / "none.json")}), "p", 2)
    assert "data.train" in checked.errors and shown == "" and "fix the fields" in stats
