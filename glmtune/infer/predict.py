"""Batch prediction: every record's last assistant turn generated from the conversation before it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from glmtune.infer.engine import Engine, GenerationParams
from glmtune.io import atomic_write_text


@dataclass
class Prediction:
    id: str
    prediction: str
    reference: str | None
    finish_reason: str
    note: str = ""  # not written: why an empty prediction is empty (Reply.note)
    reasoning: str = ""  # reasoning families: the reply's <think> text, written apart (metrics score the answer)

    def to_json(self) -> str:
        row: dict[str, Any] = {
            "id": self.id,
            "prediction": self.prediction,
            "reference": self.reference,
            "finish_reason": self.finish_reason,
        }
        if self.reasoning:
            row["reasoning"] = self.reasoning
        return json.dumps(row, ensure_ascii=False)


def record_messages(record: Any, family: Any) -> list[dict[str, Any]]:
    """A normalised data record's messages in the engine's form (tool calls in the family's format)."""
    from glmtune.families import ToolCall

    out: list[dict[str, Any]] = []
    for m in record.messages:
        if m["role"] == "assistant" and m.get("tool_calls"):
            for call in m["tool_calls"]:
                out.append(family.format_tool_call(ToolCall(call["name"], call.get("arguments") or {})))
            continue
        out.append({k: v for k, v in m.items() if k in ("role", "content", "metadata", "tools")})
    return out


def samples_from_records(records: list[Any], family: Any) -> list[tuple[str, list[dict[str, Any]], Any]]:
    """(id, messages, tools) per record; the id is the record's own ``id`` field or its FILE:LINE."""
    out = []
    for r in records:
        rid = r.raw.get("id") if isinstance(r.raw, dict) else None
        out.append((str(rid) if rid is not None else str(r.origin), record_messages(r, family), r.tools or None))
    return out


def split_prompt(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    """(messages before the last assistant turn, that turn's content); a conversation ending on a user turn has
    no reference and is predicted as it is."""
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
    if last is None or any(m["role"] == "user" for m in messages[last + 1 :]):
        return list(messages), None
    return messages[:last], str(messages[last].get("content", ""))


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def predict(
    engine: Engine,
    samples: Iterable[tuple[str, list[dict[str, Any]], list[Any] | None]],
    params: GenerationParams,
    batch_size: int = 8,
    progress: bool = True,
) -> list[Prediction]:
    """Generate for ``(id, messages, tools)`` samples in left-padded batches (grouped by tools)."""
    prepared = []
    for sid, messages, tools in samples:
        prompt, reference = split_prompt(messages)
        prepared.append((sid, engine.prompt_ids(engine.build_messages(prompt, tools)), reference, bool(tools)))
    order = sorted(range(len(prepared)), key=lambda i: len(prepared[i][1]))  # similar lengths pad less
    results: dict[int, Prediction] = {}
    bar = tqdm(total=len(prepared), desc="predict", unit="rec", disable=not progress)
    for chunk in _batches(order, batch_size):
        outputs = engine.generate_ids([prepared[i][1] for i in chunk], params)
        for i, new_ids in zip(chunk, outputs, strict=False):
            sid, prompt_ids, reference, has_tools = prepared[i]
            reply = engine.finish(len(prompt_ids), new_ids, has_tools, params, engine.opens_reasoning(prompt_ids))
            text = reply.text if not reply.tool_calls else reply.message["content"]
            results[i] = Prediction(sid, text, reference, reply.finish_reason, reply.note, reply.reasoning)
        bar.update(len(chunk))
    bar.close()
    return [results[i] for i in range(len(prepared))]


def write_predictions(path: Path, predictions: list[Prediction]) -> None:
    atomic_write_text(Path(path), "".join(p.to_json() + "\n" for p in predictions))
