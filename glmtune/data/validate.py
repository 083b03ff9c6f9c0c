"""Checks on normalised records before the default-mode renderers see them.

Each problem is a :class:`DataIssue` ``FILE:LINE: field: what is wrong`` naming the field in the user's own
record (``conversations[2].content``). Official-compatible modes do not use this: they accept exactly what the
official code accepted and refuse what it refused (see ``render/official``).
"""

from __future__ import annotations

from typing import Any

from glmtune.data.formats import MISSING, FormatSpec
from glmtune.data.normalize import normalize
from glmtune.data.record import DataIssue, Message, RawRecord, Record, RecordError, type_name


def loss_flag(message: Message) -> bool:
    """Whether an assistant message is trained on (``loss`` absent → yes); other roles never are."""
    if message["role"] != "assistant":
        return False
    loss = message.get("loss")
    return True if loss is None else bool(loss)


def checked(raw: RawRecord, spec: FormatSpec) -> Record | list[DataIssue]:
    """``raw`` normalised to messages (``spec``) and validated: the record, or every problem it has."""
    try:
        record = normalize(raw, spec)
    except RecordError as e:
        return [e.issue(raw.origin)]
    return validate(record) or record


def validate(record: Record) -> list[DataIssue]:
    """Every problem of one record (empty list = valid)."""
    out: list[DataIssue] = []

    def bad(field: str, message: str) -> None:
        out.append(DataIssue(record.origin, field, message))

    messages = record.messages
    if not messages:
        bad(_messages_field(record), "the conversation is empty")
        return out
    previous: Message | None = None
    for m in messages:
        src = m.get("src", "")
        content = m.get("content", MISSING)
        if content is MISSING:
            bad(_join(src, "content"), "missing")
        elif not isinstance(content, str):
            bad(_join(src, "content"), f"expected a string, got {type_name(content)}")
        if len(m) > 2 + ("src" in m):  # more than role, content (and src)
            loss = m.get("loss")
            if loss is not None and not (isinstance(loss, bool) or (type(loss) is int and loss in (0, 1))):
                bad(_join(src, "loss"), f"expected true or false, got {_show(loss)}")
            reasoning = m.get("reasoning_content")
            if reasoning is not None and not isinstance(reasoning, str):
                bad(_join(src, "reasoning_content"), f"expected a string, got {type_name(reasoning)}")
            metadata = m.get("metadata")
            if metadata is not None and not isinstance(metadata, str):
                bad(_join(src, "metadata"), f"expected a string (the tool name), got {type_name(metadata)}")
            tools = m.get("tools")
            if tools is not None:
                if m["role"] != "system":
                    bad(_join(src, "tools"), f"tools belong to a system message, not to a {m['role']} message")
                elif not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
                    bad(_join(src, "tools"), f"expected a list of tool definitions (objects), got {type_name(tools)}")
        if m["role"] == "observation" and not _is_call(previous):
            bad(
                src or "messages",
                "an observation must follow a tool call (an assistant message with tool_calls, a tool name as "
                'metadata, or the JSON content {"name": ..., "arguments": {...}})',
            )
        previous = m
    assistants = [m for m in messages if m["role"] == "assistant"]
    if not assistants:
        bad(_messages_field(record), "no assistant message to learn from")
    elif not any(loss_flag(m) for m in assistants) and not out:
        bad(_messages_field(record), "no assistant message to learn from (every assistant message has loss false)")
    return out


def _is_call(message: Message | None) -> bool:
    if message is None:
        return False
    if message["role"] == "observation":
        return True  # several results after parallel calls
    return message["role"] == "assistant" and bool(message.get("tool_calls") or message.get("metadata"))


def _messages_field(record: Record) -> str:
    srcs = [m.get("src", "") for m in record.messages]
    if srcs and "[" in srcs[-1]:
        return srcs[-1].split("[", 1)[0]
    return "conversations" if record.fmt in ("chatglm3", "sharegpt") else "messages" if record.fmt == "glm4" else ""


def _join(src: str, key: str) -> str:
    if not src:
        return key
    if src.endswith("]") and src.count("[") == 1:  # a message object: conversations[2] -> conversations[2].content
        return f"{src}.{key}"
    if "." in src or src.count("[") > 1:  # history[0][1], conversations[2].observation: the value itself
        return src
    return src if key == "content" else f"{src}.{key}"


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else type_name(value) if value is None else str(value)
