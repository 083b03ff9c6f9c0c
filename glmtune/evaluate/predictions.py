"""Read a predictions JSONL file: one ``{"prediction": str, "reference": str, "id"?: str | int}`` object a line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from glmtune.errors import GlmtuneError, where

MAX_LISTED_ERRORS = 50


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _parse_line(path: Path, lineno: int, raw: bytes, errors: list[str]) -> tuple[str, str, str | None] | None:
    """One line's (prediction, reference, id), or None after appending its problems to ``errors``."""
    try:
        text = raw.decode("utf-8")
        record = json.loads(text)
    except UnicodeDecodeError as e:
        errors.append(f"{where(path, lineno)}: not valid UTF-8 (byte {e.start + 1})")
        return None
    except json.JSONDecodeError as e:
        errors.append(f"{where(path, lineno)}: invalid JSON: {e.msg} (column {e.colno})")
        return None
    if not isinstance(record, dict):
        errors.append(f"{where(path, lineno)}: expected a JSON object, got {_json_type(record)}")
        return None
    bad = len(errors)
    for field in ("prediction", "reference"):
        if field not in record:
            errors.append(f"{where(path, lineno, field)}: missing")
        elif not isinstance(record[field], str):
            errors.append(f"{where(path, lineno, field)}: expected a string, got {_json_type(record[field])}")
    record_id = record.get("id")
    if record_id is not None and (isinstance(record_id, bool) or not isinstance(record_id, (str, int))):
        errors.append(f"{where(path, lineno, 'id')}: expected a string or integer, got {_json_type(record_id)}")
    if len(errors) > bad:
        return None
    return record["prediction"], record["reference"], None if record_id is None else str(record_id)


def read_predictions(path: str | Path) -> tuple[list[str], list[str], list[str | None]]:
    """Read ``(predictions, references, ids)`` from a JSONL file; ``id`` is optional (None where absent).

    Blank lines are skipped. Every bad line is reported (``FILE:LINE: field: what is wrong``) in one
    ``GlmtuneError``; its ``errors`` attribute holds the full list.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise GlmtuneError(f"{path}: cannot read predictions: {e.strerror or e}") from e
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # UTF-8 byte-order mark

    predictions: list[str] = []
    references: list[str] = []
    ids: list[str | None] = []
    errors: list[str] = []
    for lineno, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        parsed = _parse_line(path, lineno, raw, errors)
        if parsed is not None:
            predictions.append(parsed[0])
            references.append(parsed[1])
            ids.append(parsed[2])

    if errors:
        listed = "; ".join(errors[:MAX_LISTED_ERRORS])
        more = f"; ... and {len(errors) - MAX_LISTED_ERRORS} more" if len(errors) > MAX_LISTED_ERRORS else ""
        error = GlmtuneError(f"{path}: {len(errors)} problem(s) in predictions: {listed}{more}")
        error.errors = errors  # type: ignore[attr-defined]
        raise error
    if not predictions:
        raise GlmtuneError(f"{path}: no predictions (the file has no JSON lines)")
    return predictions, references, ids
