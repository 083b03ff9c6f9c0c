"""``response_format: {"type": "json_object"}``: decoding constrained so the reply is one JSON object.

A character-level pushdown machine (:func:`step`) knows which text may follow the reply so far; a token may be
sampled only when its text keeps the reply a prefix of a JSON object, and once the object is closed only a stop
token may follow. Tokens are checked lazily, most likely first (greedy), or in the order of their Gumbel-perturbed
scores (sampling: the first valid token is an exact draw from the distribution restricted to the valid tokens),
so a model that writes JSON anyway costs one check per step. A reply cut by ``max_tokens`` ends as a prefix of
JSON, as with OpenAI.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import torch

from glmtune.serve.limits import MAX_JSON_DEPTH

MAX_BLANK = 16  # whitespace-only tokens in a row outside strings (a model must not idle forever in JSON mode)
OTHER = "\u00e9"  # stands for any non-ASCII character (and a partial UTF-8 byte): valid inside strings only
_ESCAPES = frozenset('"\\/bfnrt')
_HEX = frozenset("0123456789abcdefABCDEF")
_DIGITS = frozenset("0123456789")
_BLANK = frozenset(" \t\n\r")
_LITERALS = {"t": "rue", "f": "alse", "n": "ull"}

# A state is (mode, aux, stack): ``stack`` a str of "o" (object) / "a" (array) frames, ``aux`` what the mode
# needs (string kind, hex digits left, literal rest, number part). Hashable, so checks can be cached.
State = tuple[str, Any, str]
START: State = ("top", None, "")
_IN_STRING = frozenset({"string", "escape", "hex"})


def _after_value(stack: str) -> State:
    return ("done", None, "") if not stack else ("after", None, stack)


def _value(ch: str, stack: str) -> State | None:
    """The state after ``ch`` begins a value inside ``stack``."""
    if ch == "{":
        return ("key_or_end", None, stack + "o") if len(stack) < MAX_JSON_DEPTH else None
    if ch == "[":
        return ("value_or_end", None, stack + "a") if len(stack) < MAX_JSON_DEPTH else None
    if ch == '"':
        return ("string", "value", stack)
    if ch == "-":
        return ("number", "sign", stack)
    if ch == "0":
        return ("number", "zero", stack)
    if ch in _DIGITS:
        return ("number", "int", stack)
    if ch in _LITERALS:
        return ("literal", _LITERALS[ch], stack)
    return None


_NUMBER_NEXT = {
    "sign": {**dict.fromkeys(_DIGITS - {"0"}, "int"), "0": "zero"},
    "zero": {".": "dot", "e": "exp", "E": "exp"},
    "int": {**dict.fromkeys(_DIGITS, "int"), ".": "dot", "e": "exp", "E": "exp"},
    "dot": dict.fromkeys(_DIGITS, "frac"),
    "frac": {**dict.fromkeys(_DIGITS, "frac"), "e": "exp", "E": "exp"},
    "exp": {**dict.fromkeys(_DIGITS, "expd"), "+": "expsign", "-": "expsign"},
    "expsign": dict.fromkeys(_DIGITS, "expd"),
    "expd": dict.fromkeys(_DIGITS, "expd"),
}
_NUMBER_ENDS = frozenset({"zero", "int", "frac", "expd"})


def step(state: State, ch: str) -> State | None:
    """The state after ``ch``, or None when ``ch`` cannot follow (the reply would not be JSON)."""
    mode, aux, stack = state
    if mode == "string":
        if ch == '"':
            return ("colon", None, stack) if aux == "key" else _after_value(stack)
        if ch == "\\":
            return ("escape", aux, stack)
        return None if ch < " " else state
    if mode == "escape":
        if ch == "u":
            return ("hex", (aux, 4), stack)
        return ("string", aux, stack) if ch in _ESCAPES else None
    if mode == "hex":
        kind, left = aux
        if ch not in _HEX:
            return None
        return ("string", kind, stack) if left == 1 else ("hex", (kind, left - 1), stack)
    if mode == "literal":
        if not aux or ch != aux[0]:
            return None
        return _after_value(stack) if len(aux) == 1 else ("literal", aux[1:], stack)
    if mode == "number":
        nxt = _NUMBER_NEXT[aux].get(ch)
        if nxt is not None:
            return ("number", nxt, stack)
        if aux not in _NUMBER_ENDS:
            return None
        return step(_after_value(stack), ch)  # the number ended: ``ch`` is what follows it
    if ch in _BLANK:
        return None if mode == "done" else state
    top = stack[-1:] if stack else ""
    if mode == "top":
        return ("key_or_end", None, "o") if ch == "{" else None
    if mode in ("key_or_end", "key"):
        if ch == '"':
            return ("string", "key", stack)
        return _after_value(stack[:-1]) if ch == "}" and mode == "key_or_end" else None
    if mode == "colon":
        return ("value", None, stack) if ch == ":" else None
    if mode in ("value", "value_or_end"):
        if ch == "]" and mode == "value_or_end":
            return _after_value(stack[:-1])
        return _value(ch, stack)
    if mode == "after":
        if ch == ",":
            return ("key", None, stack) if top == "o" else ("value", None, stack)
        if (ch == "}" and top == "o") or (ch == "]" and top == "a"):
            return _after_value(stack[:-1])
    return None


def feed(state: State | None, text: str) -> State | None:
    for ch in text:
        if state is None:
            return None
        state = step(state, ch if ch.isascii() else OTHER)
    return state


class Surfaces:
    """The text each token adds when it follows other text (cached per tokenizer as tokens are looked at)."""

    def __init__(self, tokenizer: Any, banned: set[int]) -> None:
        self.tokenizer, self.banned = tokenizer, banned
        self.anchor = tokenizer.encode("a", add_special_tokens=False)[-1:]
        self.base = tokenizer.decode(self.anchor)
        self._text: dict[int, str | None] = {}
        self.valid: dict[tuple[State, int], bool] = {}  # (state, token) -> may the token follow there

    def __call__(self, token: int) -> str | None:
        """The text ``token`` adds (None: a special token, or one that adds no text)."""
        if token not in self._text:
            text = None
            if token not in self.banned and token < len(self.tokenizer):  # beyond: padded embedding rows
                whole = self.tokenizer.decode([*self.anchor, token])
                text = whole[len(self.base) :] if whole.startswith(self.base) else None
            self._text[token] = text or None
        return self._text[token]


@dataclass
class JsonConstraint:
    """One row's JSON mode: ``prefix`` (the family's content-reply start) first, then a JSON object."""

    surfaces: Surfaces
    stop_ids: tuple[int, ...]
    prefix: tuple[int, ...] = ()
    state: State | None = START
    fed: int = 0
    blank_run: int = 0  # whitespace-only tokens just written outside strings

    def active(self, generated: list[int]) -> bool:
        """Whether the JSON part has begun (the prefix is written, or there is none)."""
        return tuple(generated[: len(self.prefix)]) == self.prefix and len(generated) >= len(self.prefix)

    def _catch_up(self, generated: list[int]) -> None:
        start = len(self.prefix)
        for token in generated[max(self.fed, start) :]:
            text = self.surfaces(token) or ""
            outside = self.state is not None and self.state[0] not in _IN_STRING
            self.blank_run = self.blank_run + 1 if outside and not text.strip() else 0
            self.state = feed(self.state, text) if self.state is not None else None
        self.fed = len(generated)

    def valid(self, token: int) -> bool:
        state = self.state
        if state is None:
            return token in self.stop_ids
        if state[0] == "done":
            return token in self.stop_ids
        key, cache = (state, token), self.surfaces.valid
        ok = cache.get(key)
        if ok is None:
            text = self.surfaces(token)
            ok = cache[key] = text is not None and feed(state, text) is not None
            if len(cache) > 1 << 20:  # bounded memory: deep or odd states come and go
                cache.clear()
        if ok and self.blank_run >= MAX_BLANK and state[0] not in _IN_STRING:
            return bool((self.surfaces(token) or "").strip())
        return ok

    def pick(self, logits: torch.Tensor, generated: list[int], sample: bool, temperature: float, gen: Any) -> int:
        """The next token of this row: the best valid one, by score (greedy) or by a Gumbel-perturbed score."""
        self._catch_up(generated)
        if self.state is None or self.state[0] == "done":  # the object is closed: only a stop token may follow
            stops = torch.tensor(self.stop_ids, device=logits.device)
            return self.stop_ids[int(logits[stops].argmax())]
        scores = logits.float()
        if sample:
            u = torch.rand(scores.shape, generator=gen).clamp_(1e-20, 1.0)
            scores = scores / max(temperature, 1e-5) - torch.log(-torch.log(u))
        vocab, seen = scores.shape[-1], 0
        for k in (16, 256, vocab):
            k = min(k, vocab)
            order = scores.topk(k).indices.tolist()
            for token in order[seen:]:
                if self.valid(token):
                    return token
            seen = k
            if k == vocab:
                break
        return self.stop_ids[0]  # nothing can follow (cannot happen for a prefix of JSON): end the reply


_surfaces: weakref.WeakKeyDictionary[Any, Surfaces] = weakref.WeakKeyDictionary()


def json_constraint(tokenizer: Any, family: Any, stop_ids: list[int], prefix: tuple[int, ...]) -> JsonConstraint:
    """A fresh JSON-mode constraint for one request (token texts are shared per tokenizer)."""
    surfaces = _surfaces.get(tokenizer)
    if surfaces is None:
        banned = set(getattr(tokenizer, "all_special_ids", ())) | set(stop_ids)
        for name in family.special_tokens:
            token = tokenizer.convert_tokens_to_ids(name)
            if isinstance(token, int) and token >= 0:
                banned.add(token)
        surfaces = _surfaces[tokenizer] = Surfaces(tokenizer, banned)
    return JsonConstraint(surfaces, tuple(stop_ids), prefix)
