"""Record formats: detect which one a file uses, and normalise every record to messages.

Two shapes cover every format, with LLaMA-Factory's ``dataset_info.json`` column/tag names:

* ``pairs``: ``prompt`` (+ ``query``), ``response``, optional ``history`` ([[q, r], ...]), ``system``, ``tools``
  — alpaca (instruction/input/output), input/output, prompt/response(/history), ADGEN content/summary;
* ``messages``: a list of messages with a role tag and a content tag — ChatGLM3 ``conversations``, GLM-4/OpenAI
  ``messages``, sharegpt ``{"from", "value"}``.

A user's LLaMA-Factory ``dataset_info.json`` entry works as the mapping (:func:`spec_from_dataset_info`).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from glmtune.data.record import Message, RawRecord, Record, RecordError, type_name
from glmtune.errors import GlmtuneError

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "<missing>"})()
"""Stands for a field absent from the record (validation reports it)."""

_SHAREGPT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}
_ROLE_TAGS = {
    "role_tag": "role",
    "content_tag": "content",
    "user_tag": "user",
    "assistant_tag": "assistant",
    "observation_tag": "observation",
    "function_tag": "",
    "system_tag": "system",
    "tool_tag": "tool",
}


@dataclass(frozen=True)
class FormatSpec:
    """How the fields of one record format map onto messages."""

    name: str
    shape: str  # "pairs" | "messages"
    columns: dict[str, str | None] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def col(self, key: str) -> str | None:
        return self.columns.get(key)

    @cached_property
    def roles(self) -> dict[str, str]:
        """Role values of the data → our roles (``function_call``/``tool`` are converted while normalising)."""
        return _role_map(self.tags)


FORMATS: dict[str, FormatSpec] = {
    "chatglm3": FormatSpec("chatglm3", "messages", {"messages": "conversations", "tools": "tools"}, _ROLE_TAGS),
    "glm4": FormatSpec("glm4", "messages", {"messages": "messages", "tools": "tools"}, _ROLE_TAGS),
    "sharegpt": FormatSpec(
        "sharegpt", "messages", {"messages": "conversations", "system": "system", "tools": "tools"}, _SHAREGPT_TAGS
    ),
    "alpaca": FormatSpec(
        "alpaca",
        "pairs",
        {"prompt": "instruction", "query": "input", "response": "output", "history": "history", "system": "system"},
    ),
    "input-output": FormatSpec("input-output", "pairs", {"prompt": "input", "response": "output"}),
    "prompt-response": FormatSpec(
        "prompt-response", "pairs", {"prompt": "prompt", "response": "response", "history": "history"}
    ),
    "adgen": FormatSpec("adgen", "pairs", {"prompt": "content", "response": "summary"}),
}


# ---------------------------------------------------------------------------------------------------- specs
def get_spec(fmt: str | FormatSpec | None, columns: dict[str, Any] | None = None) -> FormatSpec | None:
    """The spec of a named format with ``columns`` overrides (our keys or a LLaMA-Factory entry); None = detect."""
    if isinstance(fmt, FormatSpec):
        spec: FormatSpec | None = fmt
    elif fmt is None:
        spec = None
    elif fmt in FORMATS:
        spec = FORMATS[fmt]
    else:
        raise GlmtuneError(f"unknown data format {fmt!r}; known: {', '.join(FORMATS)}")
    if columns:
        if "formatting" in columns or "tags" in columns or isinstance(columns.get("columns"), dict):
            entry_spec = spec_from_entry(columns)
            return entry_spec if spec is None else replace(entry_spec, name=spec.name)
        if spec is None:
            raise GlmtuneError("column names given without a format: pass --format too")
        cols = {**spec.columns, **{k: v for k, v in columns.items() if not k.endswith("_tag")}}
        tags = {**spec.tags, **{k: v for k, v in columns.items() if k.endswith("_tag")}}
        spec = replace(spec, columns=cols, tags=tags)
    return spec


def spec_from_entry(entry: dict[str, Any], name: str = "dataset_info") -> FormatSpec:
    """A spec from one LLaMA-Factory ``dataset_info.json`` entry (``formatting``, ``columns``, ``tags``)."""
    formatting = entry.get("formatting", "alpaca")
    columns = dict(entry.get("columns") or {})
    if formatting == "alpaca":
        cols = {"prompt": "instruction", "query": "input", "response": "output", "history": None, "system": None}
        cols.update(columns)
        return FormatSpec(name, "pairs", cols, {})
    if formatting in ("sharegpt", "openai"):
        tags = dict(_SHAREGPT_TAGS)
        tags["tool_tag"] = ""
        tags.update(entry.get("tags") or {})
        cols = {"messages": "conversations", "system": None, "tools": None}
        cols.update(columns)
        return FormatSpec(name, "messages", cols, tags)
    raise GlmtuneError(f"dataset_info entry {name!r}: formatting {formatting!r} is not supported (alpaca, sharegpt)")


def spec_from_dataset_info(path: str | Path, name: str) -> tuple[FormatSpec, Path | None]:
    """The spec and data file of entry ``name`` of a LLaMA-Factory ``dataset_info.json``."""
    path = Path(path)
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise GlmtuneError(f"{path}: cannot read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise GlmtuneError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    if not isinstance(info, dict) or name not in info:
        known = ", ".join(sorted(info)) if isinstance(info, dict) else "none"
        raise GlmtuneError(f"{path}: no dataset {name!r} (entries: {known})")
    entry = info[name]
    file_name = entry.get("file_name")
    return spec_from_entry(entry, name), (path.parent / file_name) if file_name else None


# ---------------------------------------------------------------------------------------------------- detection
def classify(obj: Any) -> tuple[str | None, bool]:
    """(format name or None, sure) for one raw record; ``sure`` is False when an empty list left it open."""
    if not isinstance(obj, dict):
        return None, False
    for key, role_fmt in (("conversations", "chatglm3"), ("messages", "glm4")):
        value = _maybe_json(obj.get(key))
        if isinstance(value, list):
            for m in value:
                if isinstance(m, dict):
                    if "from" in m or "value" in m:
                        return "sharegpt" if key == "conversations" else "sharegpt-messages", True
                    if "role" in m:
                        return role_fmt, True
            return role_fmt, False
    if "instruction" in obj:
        return "alpaca", True
    if "content" in obj and "summary" in obj:
        return "adgen", True
    if "prompt" in obj and "response" in obj:
        return "prompt-response", True
    if "input" in obj and ("output" in obj or "target" in obj):
        return "input-output" if "output" in obj else "input-target", True
    return None, False


def detect(records: list[RawRecord], where: str, sample: int = 200) -> FormatSpec:
    """The format of a file from its first records; an error naming the keys seen when none fits."""
    weak: str | None = None
    keys: dict[str, None] = {}
    for raw in records[:sample]:
        name, sure = classify(raw.data)
        if isinstance(raw.data, dict):
            keys.update(dict.fromkeys(raw.data))
        if name and sure:
            return _named(name)
        weak = weak or name
    if weak:
        return _named(weak)
    seen = ", ".join(sorted(keys)) if keys else "no JSON objects"
    raise GlmtuneError(
        f"{where}: cannot tell the data format from the keys seen ({seen}); name it with --format "
        f"({', '.join(FORMATS)}) and map columns with --columns if they are named differently"
    )


_DETECTED_VARIANTS = {
    "sharegpt-messages": replace(FORMATS["sharegpt"], columns={**FORMATS["sharegpt"].columns, "messages": "messages"}),
    "input-target": replace(FORMATS["input-output"], columns={"prompt": "input", "response": "target"}),
}
"""Shapes detection recognises that are a named format with other column names."""


def _named(name: str) -> FormatSpec:
    return _DETECTED_VARIANTS.get(name) or FORMATS[name]


# ---------------------------------------------------------------------------------------------------- normalise
def normalize(raw: RawRecord, spec: FormatSpec) -> Record:
    """One raw record as messages (structural problems raise :class:`RecordError`; types are checked later)."""
    obj = raw.data
    if not isinstance(obj, dict):
        raise RecordError("record", f"expected a JSON object, got {type_name(obj)}")
    if spec.shape == "pairs":
        messages, tools = _pairs(obj, spec)
    else:
        messages, tools = _messages(obj, spec)
    return Record(messages=messages, tools=tools, origin=raw.origin, fmt=spec.name, raw=obj)


def _maybe_json(value: Any) -> Any:
    """Lists/objects stored as JSON text (CSV cells, sharegpt ``tools``) are parsed; anything else is kept."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _tools(obj: dict[str, Any], key: str | None) -> list[Any] | None:
    if not key or key not in obj or obj[key] is None:
        return None
    value = obj[key]
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise RecordError(key, f"not valid JSON ({e.msg} at column {e.colno})") from None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise RecordError(key, f"expected a list of tool definitions (objects), got {type_name(value)}")
    return value


def _pairs(obj: dict[str, Any], spec: FormatSpec) -> tuple[list[Message], list[Any] | None]:
    messages: list[Message] = []
    system_col = spec.col("system")
    if system_col and obj.get(system_col) not in (None, ""):
        messages.append({"role": "system", "content": obj[system_col], "src": system_col})
    history_col = spec.col("history")
    history = _maybe_json(obj.get(history_col)) if history_col else None
    if history is not None:
        if not isinstance(history, list):
            raise RecordError(
                history_col or "history", f"expected a list of [query, response] pairs, got {type_name(history)}"
            )
        for i, pair in enumerate(history):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise RecordError(f"{history_col}[{i}]", f"expected a [query, response] pair, got {_short(pair)}")
            messages.append({"role": "user", "content": pair[0], "src": f"{history_col}[{i}][0]"})
            messages.append({"role": "assistant", "content": pair[1], "src": f"{history_col}[{i}][1]"})
    prompt_col = spec.col("prompt") or "prompt"
    prompt = obj.get(prompt_col, MISSING)
    query_col = spec.col("query")
    query = obj.get(query_col) if query_col else None
    src = prompt_col
    if isinstance(prompt, str) and isinstance(query, str) and query:
        prompt = f"{prompt}\n{query}" if prompt else query
        src = f"{prompt_col}+{query_col}"
    elif query is not None and not isinstance(query, str):
        raise RecordError(query_col or "query", f"expected a string, got {type_name(query)}")
    response_col = spec.col("response") or "response"
    messages.append({"role": "user", "content": prompt, "src": src})
    messages.append({"role": "assistant", "content": obj.get(response_col, MISSING), "src": response_col})
    return messages, _tools(obj, spec.col("tools"))


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _role_map(tags: dict[str, str]) -> dict[str, str]:
    roles: dict[str, str] = {}
    for tag, role in (
        ("user_tag", "user"),
        ("assistant_tag", "assistant"),
        ("system_tag", "system"),
        ("observation_tag", "observation"),
        ("function_tag", "function_call"),
        ("tool_tag", "tool"),
    ):
        if tags.get(tag):
            roles.setdefault(tags[tag], role)
    return roles


def _messages(obj: dict[str, Any], spec: FormatSpec) -> tuple[list[Message], list[Any] | None]:
    col = spec.col("messages") or "messages"
    if col not in obj:
        raise RecordError(col, "missing (the list of messages)")
    items = _maybe_json(obj[col])
    if not isinstance(items, list):
        raise RecordError(col, f"expected a list of messages, got {type_name(items)}")
    role_tag, content_tag = spec.tags.get("role_tag", "role"), spec.tags.get("content_tag", "content")
    roles = spec.roles
    messages: list[Message] = []
    system_col = spec.col("system")
    if system_col and obj.get(system_col) not in (None, ""):
        messages.append({"role": "system", "content": obj[system_col], "src": system_col})
    for i, item in enumerate(items):
        src = f"{col}[{i}]"
        if not isinstance(item, dict):
            raise RecordError(src, f"expected a message object, got {type_name(item)}")
        if role_tag not in item:
            raise RecordError(f"{src}.{role_tag}", "missing")
        value = item[role_tag]
        role = roles.get(value) if isinstance(value, str) else None
        if role is None:
            known = ", ".join(repr(r) for r in roles)
            raise RecordError(f"{src}.{role_tag}", f"unknown role {_short(value)} (expected one of {known})")
        content = item.get(content_tag, MISSING)
        if role == "tool":
            messages += _tool_turn(item, src, content_tag, content)
        elif role == "function_call":
            messages.append(_function_call(content, f"{src}.{content_tag}", item.get("loss")))
        else:
            msg: Message = {"role": role, "content": content, "src": src}
            if len(item) > 2 or content is MISSING:  # more than role and content
                for key in ("loss", "metadata", "tools", "reasoning_content"):
                    if item.get(key) is not None:
                        msg[key] = _maybe_json(item[key]) if key == "tools" else item[key]
            if role == "assistant" and item.get("tool_calls"):
                msg["tool_calls"] = _calls(item["tool_calls"], f"{src}.tool_calls")
                if msg["content"] is None or msg["content"] is MISSING:
                    msg["content"] = ""
            messages.append(msg)
    _json_calls(messages)
    return messages, _tools(obj, spec.col("tools"))


def _json_calls(messages: list[Message]) -> None:
    """An assistant message whose content is a JSON tool call ``{"name", "arguments"}`` (or a list of them) and
    that an observation follows is a tool call: the GLM-4 README's tool data, and plain sharegpt ``gpt`` turns."""
    for m, after in itertools.pairwise(messages):
        if m["role"] != "assistant" or m.get("tool_calls") or after["role"] != "observation":
            continue
        content = m.get("content")
        if not isinstance(content, str) or content.strip()[:1] not in ("{", "["):
            continue
        try:
            parsed = json.loads(content)
        except json.JSONDecodeError:
            continue
        items = parsed if isinstance(parsed, list) else [parsed]
        if items and all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in items):
            try:
                m["tool_calls"] = _calls(parsed, _content_src(m))
            except RecordError:
                continue
            m["content"] = ""


def _content_src(m: Message) -> str:
    src = m.get("src", "")
    return f"{src}.content" if src.endswith("]") else src


def _tool_turn(item: dict[str, Any], src: str, content_tag: str, content: Any) -> list[Message]:
    """A ChatGLM3 ``tool`` turn (name, parameters, observation) → assistant call + observation; an OpenAI ``tool``
    message (a tool's result) → observation."""
    if not any(k in item for k in ("name", "parameters", "observation")):
        return [{"role": "observation", "content": content, "src": src}]
    for key in ("name", "parameters"):
        if key not in item:
            raise RecordError(f"{src}.{key}", "missing (a tool turn needs name, parameters and observation)")
    name, params = item["name"], _maybe_json(item["parameters"])
    if not isinstance(name, str) or not name:
        raise RecordError(f"{src}.name", f"expected the tool name (a non-empty string), got {type_name(name)}")
    if not isinstance(params, dict):
        raise RecordError(f"{src}.parameters", f"expected an object of arguments, got {type_name(params)}")
    call: Message = {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"name": name, "arguments": params}],
        "src": src,
    }
    if item.get("loss") is not None:
        call["loss"] = item["loss"]
    observation = item.get("observation")
    if not isinstance(observation, str):
        observation = json.dumps(observation, ensure_ascii=False)
    return [call, {"role": "observation", "content": observation, "src": f"{src}.observation"}]


def _function_call(value: Any, src: str, loss: Any) -> Message:
    """A sharegpt ``function_call`` turn: one call or a list of parallel calls, as JSON text or objects."""
    if value is MISSING:
        raise RecordError(src, "missing")
    parsed = value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as e:
            raise RecordError(src, f'expected a JSON tool call {{"name", "arguments"}}: {e.msg}') from None
    msg: Message = {"role": "assistant", "content": "", "tool_calls": _calls(parsed, src), "src": src}
    if loss is not None:
        msg["loss"] = loss
    return msg


def _calls(value: Any, src: str) -> list[dict[str, Any]]:
    calls = value if isinstance(value, list) else [value]
    if not calls:
        raise RecordError(src, "an empty list of tool calls")
    out = []
    for i, call in enumerate(calls):
        where = f"{src}[{i}]" if isinstance(value, list) else src
        if isinstance(call, dict) and isinstance(call.get("function"), dict):
            call = call["function"]
        if not isinstance(call, dict):
            raise RecordError(where, f'expected a tool call object {{"name", "arguments"}}, got {type_name(call)}')
        name = call.get("name")
        if not isinstance(name, str) or not name:
            raise RecordError(f"{where}.name", f"expected the tool name (a non-empty string), got {type_name(name)}")
        args = call.get("arguments", call.get("parameters", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except json.JSONDecodeError as e:
                raise RecordError(f"{where}.arguments", f"not valid JSON ({e.msg})") from None
        if not isinstance(args, dict):
            raise RecordError(f"{where}.arguments", f"expected an object, got {type_name(args)}")
        out.append({"name": name, "arguments": args})
    return out
