"""Normalise: one raw record, under its :class:`~glmtune.data.formats.FormatSpec`, as a list of messages.

Structural problems (a missing column, a history that is not pairs, an unknown role, a malformed tool call) raise
:class:`~glmtune.data.record.RecordError` naming the field; value types are checked later (``validate``).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from glmtune.data.formats import MISSING, FormatSpec, maybe_json
from glmtune.data.record import Message, RawRecord, Record, RecordError, type_name


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
    history = maybe_json(obj.get(history_col)) if history_col else None
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


def _messages(obj: dict[str, Any], spec: FormatSpec) -> tuple[list[Message], list[Any] | None]:
    col = spec.col("messages") or "messages"
    if col not in obj:
        raise RecordError(col, "missing (the list of messages)")
    items = maybe_json(obj[col])
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
                        msg[key] = maybe_json(item[key]) if key == "tools" else item[key]
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
    name, params = item["name"], maybe_json(item["parameters"])
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
