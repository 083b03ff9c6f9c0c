"""Start-up stays light: ``glmtune --help`` and ``glmtune preprocess`` (default mode, ChatGLM2/3) never import the
heavy libraries they do not use. Each check is a fresh interpreter that lists what ended up in ``sys.modules``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import fixtures_dir

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import json, sys
sys.argv = ["glmtune", *json.loads(sys.argv[1])]
from glmtune.cli import main
try:
    main()
except SystemExit as e:
    code = e.code
else:
    code = 0
print(json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _imported(tmp_path: Path, *args: str) -> set[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), GLMTUNE_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)], env=env, capture_output=True, text=True, timeout=120
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, proc.stderr
    return set(result["modules"])


def test_help_imports_no_heavy_library(tmp_path: Path) -> None:
    for args in (["--help"], ["preprocess", "--help"], ["chat", "--help"]):
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
