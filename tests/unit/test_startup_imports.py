"""Start-up stays light: ``glmtune --help``, every ``COMMAND --help``, ``glmtune preprocess`` (default mode,
ChatGLM2/3) and ``glmtune chat`` at its first prompt never import the heavy libraries they do not use. Each check
is a fresh interpreter that lists what ended up in ``sys.modules``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from glmtune.cli import app
from glmtune.model.tiny import make_tiny
from tests.conftest import fixtures_dir

REPO = Path(__file__).resolve().parents[2]
PROBE = r"""
import json, sys
sys.argv = ["glmtune", *json.loads(sys.argv[1])]
from glmtune.cli import main
try:
    main()
except SystemExit as e:
    code = e.code
else:
    code = 0
print("\nPROBE " + json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _imported(tmp_path: Path, *args: str, stdin: str = "") -> set[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), GLMTUNE_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )
    result = json.loads(proc.stdout.rpartition("\nPROBE ")[2])
    assert result["code"] == 0, proc.stderr
    return set(result["modules"])


def test_help_imports_no_heavy_library(tmp_path: Path) -> None:
    commands = [c.name for c in app.registered_commands]
    assert {"preprocess", "chat", "serve", "train", "webui", "board"} <= set(commands)
    for args in (["--help"], *([name, "--help"] for name in commands)):
        assert not _imported(tmp_path, *args) & {"torch", "transformers", "gradio", "datasets", "pandas"}, args


def test_preprocess_default_mode_imports_no_heavy_library(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    record = {"conversations": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}]}
    data.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    for family in ("chatglm3", "chatglm2"):
        tok = fixtures_dir("prep", "tokenizers", family)
        args = ["preprocess", "--model", str(tok), "--data", str(data), "--output", str(tmp_path / f"{family}.jsonl")]
        assert not _imported(tmp_path, *args) & {"torch", "transformers", "datasets", "pandas"}, family
        assert (tmp_path / f"{family}.jsonl").read_text(encoding="utf-8").count("\n") == 1


def test_chat_first_prompt_imports_only_what_generation_needs(tmp_path: Path) -> None:
    model = make_tiny("chatglm3", tmp_path / "tiny")
    modules = _imported(tmp_path, "chat", str(model), stdin="exit\n")
    assert {"torch", "transformers"} <= modules
    assert not modules & {"gradio", "fastapi", "uvicorn", "datasets", "pandas", "peft", "deepspeed"}
