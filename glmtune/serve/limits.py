"""Bounds on what one request may make the server do, checked before anything is rendered or tokenized.

A request body is plain JSON: every string must be valid Unicode (a lone UTF-16 surrogate such as ``\\ud800``
cannot be encoded, tokenized or echoed back) and no value may nest deeper than :data:`MAX_JSON_DEPTH` (deeper
values would exhaust the recursion of the renderers, and deep tool schemas cost quadratic indentation in the
prompt). :func:`min_prompt_tokens` is a cheap lower bound on the rendered prompt's length, so a prompt that can
never fit the context is refused before it is rendered (a few KB of nested tool schema can render to millions of
tokens).
"""

from __future__ import annotations

import contextlib
import json
import re
import weakref
from typing import Any

MAX_JSON_DEPTH = 64  # nesting of any value in a request body, and in a tool call's parsed arguments
MAX_STOP_CHARS = 256  # per stop string: the stream holds back every prefix of each one, every step

_longest: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def _path(node: tuple[Any, ...] | None) -> str:
    parts: list[str] = []
    while node is not None:
        node, key = node
        parts.append(str(key))
    return ".".join(reversed(parts))


def _surrogate(text: str) -> int | None:
    """Index of the first lone surrogate in ``text`` (None when it is valid Unicode)."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return e.start
    return None


def json_problem(value: Any, prefix: str = "", max_depth: int = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """(dotted path, what is wrong) for the first lone surrogate or over-deep value in ``value``, else None.

    Iterative, so a value nested thousands deep is reported, not a RecursionError.
    """
    root: tuple[Any, ...] | None = (None, prefix) if prefix else None
    stack: list[tuple[Any, int, tuple[Any, ...] | None]] = [(value, 0, root)]
    while stack:
        item, depth, node = stack.pop()
        if isinstance(item, str):
            at = _surrogate(item)
            if at is not None:
                return _path(node), f"the string holds a lone UTF-16 surrogate ({item[at]!r} at index {at})"
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth >= max_depth:
            outer = ".".join(_path(node).split(".")[:4])  # the field the client wrote, not 64 levels of it
            return outer, f"the value is nested more than {max_depth} levels deep"
        if isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str) and _surrogate(key) is not None:  # not echoed: name the object instead
                    return _path(node), "one of its keys holds a lone UTF-16 surrogate"
                stack.append((sub, depth + 1, (node, key)))
        else:
            stack.extend((sub, depth + 1, (node, i)) for i, sub in enumerate(item))
    return None


def indented_json_chars(value: Any, cap: int) -> int:
    """A lower bound on ``len(json.dumps(value, indent=4))``, counted without building it (stops past ``cap``).

    Both tool-capable families write tool definitions as 4-space-indented JSON; the indentation is what makes a
    deep schema expensive (each level indents every line below it).
    """
    total = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack and total <= cap:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            total += 2  # the brackets; each item: a new line, its indentation, a comma but for the last
            if item:
                total += 1 + 4 * depth + (len(item) - 1) + len(item) * (1 + 4 * (depth + 1))
            if isinstance(item, dict):
                for key, sub in item.items():
                    total += len(str(key)) + 4  # "key": (quotes, colon, space)
                    stack.append((sub, depth + 1))
            else:
                stack.extend((sub, depth + 1) for sub in item)
        elif isinstance(item, str):
            total += len(item) + 2
        else:
            total += len(json.dumps(item))
    return total


def longest_token_chars(tokenizer: Any) -> int:
    """The most characters one token of ``tokenizer`` stands for (cached per tokenizer)."""
    try:
        return _longest[tokenizer]
    except (KeyError, TypeError):
        pass
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    best = 1
    marked = re.compile(r"^<.*>$")  # <0x0A>, <|blank_8|>, <|user|>: what it decodes to decides
    for i, piece in enumerate(pieces):
        if piece is None:
            continue
        n = len(piece)
        if isinstance(piece, str) and marked.match(piece):
            n = max(n, len(tokenizer.decode([i])))
        best = max(best, n)
    with contextlib.suppress(TypeError):  # a tokenizer that cannot be weakly referenced is measured each time
        _longest[tokenizer] = best
    return best


def min_prompt_tokens(
    texts: list[str], n_messages: int, tools: list[dict[str, Any]] | None, tokenizer: Any, context: int
) -> tuple[int, int]:
    """(lower bound on the prompt's tokens, the part of it due to ``tools``), cheap enough for every request.

    ``n_messages`` messages that are rendered (non-empty) add at least one token each; the characters of
    ``texts`` (which the prompt holds verbatim) and of the tools' indented JSON add at least one token per twice
    the longest token (slack for Unicode normalisation). Loose, but decisive where it matters: far past
    ``context``, where rendering would cost the most.
    """
    per_token = None

    def floor(chars: int) -> int:
        nonlocal per_token
        if chars < context:  # cannot decide anything: skip looking at the vocabulary
            return 0
        per_token = per_token or 2 * longest_token_chars(tokenizer)
        return chars // per_token

    cap = 4 * context * 64  # past this every tokenizer here needs more than the context
    tool_chars = sum(indented_json_chars(t.get("function", t), cap) for t in tools or [])
    tool_tokens = floor(tool_chars)
    return n_messages + floor(sum(map(len, texts))) + tool_tokens, tool_tokens
