"""glmtune's default mode: normalised, validated records rendered by their family's renderer (``renderer_for``),
with the mode's settings. The pipeline (``glmtune.data.pipeline.render_columns``) runs it; the records' format and
column mapping go to the normaliser, not here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmtune.data.render.modes import DEFAULT_MODE, Mode, ModeSettings, setting


@dataclass(frozen=True)
class DefaultSettings(ModeSettings):
    """``data.max_length`` (``--max-length``; None: no truncation), ``data.mask_history`` (train only the last
    reply), ``data.reasoning`` (reasoning models: which assistant turns keep their reasoning)."""

    max_length: int | None = setting(None, "length", config="max_length")
    mask_history: bool = setting(False, "bool", config="mask_history", flag=False, only_here=True)
    reasoning: str = setting("last", "choice", config="reasoning", flag=False, choices=("last", "all", "none"))

    def limit(self) -> int | None:
        return self.max_length

    @classmethod
    def from_source(
        cls,
        mode: str,
        given: dict[str, Any],
        data: Sequence[Path],
        split: str | None,
        fmt: Any,
        columns: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The format and columns are the normaliser's (``Source.render_args``): nothing to infer."""
        return given


MODES = (Mode(DEFAULT_MODE, "glmtune's default mode (every family)", DefaultSettings),)
