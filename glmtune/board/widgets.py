"""Small pieces the board's tabs share: a field's component, its message boxes, error-to-message callbacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from glmtune.board.form import Field
from glmtune.errors import GlmtuneError


def component(gr: Any, f: Field, value: Any) -> Any:
    """The gradio input of a form field."""
    kw = {"label": f.label, "elem_id": f.elem_id, "info": f.info or None}
    if f.kind == "choice":
        return gr.Dropdown(list(f.choices), value=value, **kw)
    if f.kind == "bool":
        return gr.Checkbox(value=value, **kw)
    if f.kind in ("int", "float"):
        return gr.Number(value=value, precision=0 if f.kind == "int" else None, **kw)
    lines = 2 if f.kind in ("paths", "json") else 1
    return gr.Textbox(value=value, lines=lines, max_lines=8, **kw)


def message(gr: Any, elem_id: str, kind: str) -> Any:
    """A hidden line under a field (``kind`` error or note); shown when there is something to say."""
    return gr.Markdown("", visible=False, elem_id=f"{elem_id}__{kind}", elem_classes=[f"field-{kind}"])


def guarded(action: Callable[..., str]) -> Callable[..., str]:
    """``action``'s message, or its GlmtuneError as a warning line (never a traceback on the page)."""

    def go(*args: Any) -> str:
        try:
            return action(*args)
        except GlmtuneError as e:
            return f"⚠ {e}"

    return go


def progress_html(percent: float) -> str:
    return f'<div class="bar"><div style="width:{percent:.1f}%"></div></div>'
