"""OpenAI chat requests -> the engine's messages and parameters; engine replies -> OpenAI response bodies.

``tool`` messages become the family's observations; an assistant message's ``tool_calls`` are written in the
family's own tool-call format (ChatGLM3 ``tool_call(...)`` code, GLM-4 ``name\\n{json}``), each call followed by
its result, so the model sees exactly the conversation shape it was trained on.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from glmtune.families import Message, ToolCall
from glmtune.infer.engine import Engine, GenerationParams, Reply
from glmtune.serve.errors import APIError
from glmtune.serve.json_mode import JsonConstraint, json_constraint
from glmtune.serve.limits import MAX_JSON_DEPTH, MAX_STOP_CHARS, json_problem, min_prompt_tokens
from glmtune.serve.schemas import ChatCompletionRequest, ChatMessage


@dataclass
class Defaults:
    """Server-side defaults and limits for a request's generation parameters."""

    temperature: float = 0.8
    top_p: float = 0.8
    max_tokens: int = 1024
    max_tokens_limit: int | None = None


@dataclass
class Prepared:
    """A validated request, ready for the batcher."""

    prompt: list[int]
    params: GenerationParams
    tools_available: bool
    presence_penalty: float
    frequency_penalty: float
    starts: tuple[tuple[int, ...], ...] = ()  # tool_choice "required" or named: the reply starts a call
    starts_after: int | None = None  # reasoning families: the call starts right after the reasoning ends
    json: JsonConstraint | None = None  # response_format json_object


def _call_of(call: Any, where: str) -> ToolCall:
    param = f"{where}.function.arguments"
    try:
        args = json.loads(call.function.arguments or "{}")
    except json.JSONDecodeError as e:
        raise APIError(400, f"'{param}' is not valid JSON: {e.msg}", param=param, code="invalid_value") from None
    except RecursionError:
        msg = f"'{param}' is nested more than {MAX_JSON_DEPTH} levels deep"
        raise APIError(400, msg, param=param, code="invalid_value") from None
    if not isinstance(args, dict):
        raise APIError(400, f"'{param}' must be a JSON object", param=param, code="invalid_value")
    problem = json_problem(args)
    if problem is not None:
        raise APIError(400, f"Invalid value for '{param}': {problem[1]}.", param=param, code="invalid_value")
    return ToolCall(call.function.name, args)


def to_messages(items: list[ChatMessage], engine: Engine) -> list[Message]:
    """The conversation in glmtune's message form (observations interleaved after their calls)."""
    family = engine.family
    for k, m in enumerate(items):
        if m.role == "tool" and not m.tool_call_id:  # OpenAI requires it: which call the result answers
            where = f"messages.{k}.tool_call_id"
            raise APIError(
                400, f"Missing required parameter: '{where}'.", param=where, code="missing_required_parameter"
            )
    out: list[Message] = []
    i = 0
    while i < len(items):
        m, where = items[i], f"messages.{i}"
        i += 1
        if (m.role == "tool" or m.tool_calls) and not family.supports_tools:
            raise APIError(
                400,
                f"{family.title} has no tool-calling format; '{where}' uses tools",
                param=where,
                code="tools_not_supported",
            )
        if m.role in ("system", "developer"):
            out.append({"role": "system", "content": m.text()})
        elif m.role == "user":
            out.append({"role": "user", "content": m.text()})
        elif m.role == "tool":
            out.append({"role": "observation", "content": m.text()})
        elif not m.tool_calls:
            out.append(_with_reasoning({"role": "assistant", "metadata": "", "content": m.text()}, m))
        elif family.tool_calls_in_text:  # one turn holds the text and every call; the results follow in order
            calls = [_call_of(c, f"{where}.tool_calls.{j}") for j, c in enumerate(m.tool_calls)]
            out.append(_with_reasoning(family.reply_message(m.text(), calls), m))
            results = []
            while i < len(items) and items[i].role == "tool":
                results.append(items[i])
                i += 1
            ids = [c.id for c in m.tool_calls]
            results.sort(key=lambda r: ids.index(r.tool_call_id) if r.tool_call_id in ids else len(ids))
            out += [{"role": "observation", "content": r.text()} for r in results]
        else:
            if m.text().strip():
                out.append({"role": "assistant", "metadata": "", "content": m.text()})
            results: list[ChatMessage] = []
            while i < len(items) and items[i].role == "tool":
                results.append(items[i])
                i += 1
            used: set[int] = set()
            for j, call in enumerate(m.tool_calls):
                out.append(family.format_tool_call(_call_of(call, f"{where}.tool_calls.{j}")))
                match = next(
                    (
                        k
                        for k, r in enumerate(results)
                        if k not in used and call.id is not None and r.tool_call_id == call.id
                    ),
                    None,
                )
                if match is None and call.id is None:  # a call without an id takes the next result
                    match = next((k for k in range(len(results)) if k not in used), None)
                if match is not None:
                    used.add(match)
                    out.append({"role": "observation", "content": results[match].text()})
            out += [{"role": "observation", "content": r.text()} for k, r in enumerate(results) if k not in used]
    return out


def _with_reasoning(message: Message, m: ChatMessage) -> Message:
    if m.reasoning_content:
        message["reasoning_content"] = m.reasoning_content
    return message


def _tools(req: ChatCompletionRequest, engine: Engine) -> list[dict[str, Any]] | None:
    if not req.tools:
        if req.tool_choice not in (None, "none", "auto"):
            raise APIError(400, "'tool_choice' needs 'tools'", param="tool_choice")
        return None
    if not engine.family.supports_tools:
        raise APIError(
            400,
            f"{engine.family.title} has no tool-calling format; 'tools' is not supported",
            param="tools",
            code="tools_not_supported",
        )
    tools = [t.model_dump(exclude_none=True) for t in req.tools]
    choice = req.tool_choice
    if choice == "none":
        return None
    if choice is not None and not isinstance(choice, str):
        named = [t for t in tools if t["function"]["name"] == choice.function.name]
        if not named:
            raise APIError(
                400,
                f"tool_choice names function {choice.function.name!r}, which is not in 'tools'",
                param="tool_choice",
            )
        return named
    return tools


def _fits_at_all(req: ChatCompletionRequest, tools: list[dict[str, Any]] | None, engine: Engine, context: int) -> None:
    """Refuse, before rendering, a prompt that cannot fit the context whatever the tokenizer makes of it."""
    texts = [m.text() for m in req.messages]
    texts += [c.function.name for m in req.messages for c in m.tool_calls or []]  # arguments: re-written shorter
    shown = sum(1 for m, text in zip(req.messages, texts, strict=False) if text or m.tool_calls)
    floor, from_tools = min_prompt_tokens(texts, shown, tools, engine.tokenizer, context)
    if floor >= context:
        what = "the tool definitions" if from_tools >= context else "the messages"
        raise APIError(
            400,
            f"This model's maximum context length is {context} tokens. However, {what} need at least {floor} "
            "tokens. Please reduce the length of the messages or tools.",
            param="tools" if from_tools >= context else "messages",
            code="context_length_exceeded",
        )


def prepare(req: ChatCompletionRequest, engine: Engine, context: int, defaults: Defaults) -> Prepared:
    """Validate ``req`` against the model and render its prompt (raises :class:`APIError`)."""
    if req.n not in (None, 1):
        raise APIError(400, "Only n=1 is supported.", param="n", code="unsupported_value")
    if req.logprobs:
        raise APIError(400, "logprobs are not supported.", param="logprobs", code="unsupported_value")
    if req.top_logprobs is not None:
        raise APIError(400, "Invalid value for 'top_logprobs': it needs 'logprobs' set to true.", param="top_logprobs")
    stop = req.stop_list()
    if len(stop) > 4:
        raise APIError(400, "At most 4 stop sequences are allowed.", param="stop")
    for i, s in enumerate(stop):
        if len(s) > MAX_STOP_CHARS:
            where = "stop" if isinstance(req.stop, str) else f"stop.{i}"
            raise APIError(
                400,
                f"'{where}' is {len(s)} characters long; the limit is {MAX_STOP_CHARS}.",
                param=where,
                code="invalid_value",
            )
    tools = _tools(req, engine)
    _fits_at_all(req, tools, engine, context)
    messages = to_messages(req.messages, engine)
    switches = req.chat_template_kwargs.model_dump(exclude_none=True) if req.chat_template_kwargs else {}
    forced = bool(tools) and req.tool_choice not in (None, "auto")
    try:
        prompt = engine.prompt_ids(engine.build_messages(messages, tools), **switches)
    except ValueError as e:
        raise APIError(400, f"{engine.family.title} cannot render this conversation: {e}", param="messages") from None
    room = context - len(prompt)
    asked = req.max_completion_tokens or req.max_tokens
    limit = min(room, defaults.max_tokens_limit or room)
    if room < 1 or (asked is not None and asked > limit):
        wanted = len(prompt) + (asked or 1)
        raise APIError(
            400,
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{wanted} tokens ({len(prompt)} in the messages, {asked or 1} in the completion)"
            + (f"; this server allows at most {limit} completion tokens" if room >= 1 else "")
            + ". Please reduce the length of the messages or completion.",
            param="max_tokens" if room >= 1 else "messages",
            code="context_length_exceeded",
        )
    temperature = defaults.temperature if req.temperature is None else req.temperature
    params = GenerationParams(
        max_new_tokens=asked or min(defaults.max_tokens, limit),
        temperature=temperature,
        top_p=defaults.top_p if req.top_p is None else req.top_p,
        do_sample=temperature > 0,
        seed=req.seed,
        stop=stop,
    )
    family, tok = engine.family, engine.tokenizer
    starts: tuple[tuple[int, ...], ...] = ()
    after = None
    calls = tuple(tuple(family.tool_call_start(tok, t["function"]["name"])) for t in tools or [])
    if forced:  # "required" or a named function: force the call
        starts = calls
        end = getattr(family, "reasoning_end_id", lambda t: None)(tok)
        after = end if end is not None and end not in prompt[-2:] else None  # thinking off: the block is closed
    json_prefix = _json_mode(req, engine, forced)
    constraint = None
    if json_prefix is not None:
        constraint = json_constraint(tok, family, engine.stop_ids, json_prefix)
        starts = (*calls, json_prefix) if json_prefix else ()  # a tool call, or JSON content
    return Prepared(
        prompt,
        params,
        bool(tools),
        req.presence_penalty or 0.0,
        req.frequency_penalty or 0.0,
        starts,
        after,
        constraint,
    )


def _json_mode(req: ChatCompletionRequest, engine: Engine, forced_call: bool) -> tuple[int, ...] | None:
    """The content prefix JSON mode starts after (None: no JSON mode); 400s as OpenAI's for what it refuses."""
    fmt = req.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_schema":
        raise APIError(
            400,
            'response_format type \'json_schema\' is not supported by this server; use {"type": "json_object"} '
            "(the reply is constrained to a JSON object) and describe the schema in the messages.",
            param="response_format.type",
            code="unsupported_value",
        )
    start = engine.family.content_start(engine.tokenizer)
    if start is None:
        raise APIError(
            400,
            f"response_format 'json_object' is not supported for {engine.family.title} (its replies may reason "
            "before the content).",
            param="response_format",
            code="unsupported_value",
        )
    if forced_call:
        raise APIError(
            400,
            "response_format 'json_object' cannot be combined with a tool_choice that forces a tool call.",
            param="response_format",
        )
    if not any("json" in m.text().lower() for m in req.messages):
        raise APIError(
            400,
            "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
            param="messages",
        )
    return tuple(start)


# ---------------------------------------------------------------------------------------------- responses
def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(12)}"


def tool_calls_json(calls: list[ToolCall]) -> list[dict[str, Any]]:
    return [
        {"id": new_id("call_"), "type": "function", "function": {"name": c.name, "arguments": c.to_json()}}
        for c in calls
    ]


def usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def completion(reply: Reply, cid: str, created: int, model: str) -> dict[str, Any]:
    """A ``chat.completion`` body."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.tool_calls:
        text = (reply.text or None) if reply.message.get("tool_calls") else None  # text beside tagged calls only
        message = {"role": "assistant", "content": text, "tool_calls": tool_calls_json(reply.tool_calls)}
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
        "usage": usage(reply),
    }


def chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    """A ``chat.completion.chunk`` body with one choice."""
    return {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
