"""Which checkpoint to resume from, and whether an output directory belongs to this run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from glmtune.errors import GlmtuneError

RUN_FILE = "glmtune_run.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoint directories that were fully written (they hold trainer_state.json), oldest first."""
    if not output_dir.is_dir():
        return []
    found = []
    for child in output_dir.iterdir():
        m = _CHECKPOINT.match(child.name)
        if m and child.is_dir() and (child / "trainer_state.json").is_file():
            found.append((int(m.group(1)), child))
    return [p for _, p in sorted(found)]


def step_of(checkpoint: Path) -> int | None:
    """The global step of a ``checkpoint-N`` directory."""
    m = _CHECKPOINT.match(checkpoint.name)
    return int(m.group(1)) if m else None


def resolve_resume(resume: str | None, output_dir: Path) -> str | None:
    """``auto`` -> the last complete checkpoint (or None); a number -> ``checkpoint-N``; a path -> itself."""
    if resume in (None, "", "no", "none", False):
        return None
    resume = str(resume)
    if resume in ("auto", "yes", "true", "True"):
        done = complete_checkpoints(output_dir)
        return str(done[-1]) if done else None
    path = output_dir / f"checkpoint-{resume}" if resume.isdigit() else Path(resume)
    if not (path / "trainer_state.json").is_file():
        raise GlmtuneError(f"--resume {resume}: {path} is not a complete checkpoint")
    return str(path)


def check_output_dir(output_dir: Path, fingerprint: dict[str, Any], resuming: bool, overwrite: bool) -> None:
    """Refuse to train into a directory that holds a different run (unless told to overwrite)."""
    run_file = output_dir / RUN_FILE
    if not run_file.is_file():
        if not resuming and complete_checkpoints(output_dir) and not overwrite:
            raise GlmtuneError(
                f"{output_dir}: holds checkpoints of another run; use --resume auto or another "
                "training.output_dir (or --training.overwrite_output_dir true)"
            )
        return
    previous = json.loads(run_file.read_text(encoding="utf-8"))
    if previous.get("fingerprint") != fingerprint.get("fingerprint") and not overwrite:
        diff = sorted(
            k for k in fingerprint.get("summary", {}) if previous.get("summary", {}).get(k) != fingerprint["summary"][k]
        )
        raise GlmtuneError(
            f"{output_dir}: holds a different run (differs in {', '.join(diff) or 'settings'}); "
            "choose another training.output_dir or pass --training.overwrite_output_dir true"
        )


def write_run_file(output_dir: Path, fingerprint: dict[str, Any]) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / RUN_FILE).write_text(json.dumps(fingerprint, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
