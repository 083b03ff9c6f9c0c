"""Incremental text of one generated reply: what may be shown so far, stop strings, tool-call hold-back.

Deltas are prefixes of what the family's ``parse_reply`` makes of the text so far, so the streamed text adds up
to the final reply's content. Held back until more text arrives: trailing whitespace (the final reply is
stripped), a half-decoded character, the start of a stop string, and, when tools are offered, everything until
the first line shows whether the reply is content (empty first line) or a tool call (a tool name on it); for
families whose tool calls are tagged inside the text, only the calls. Families with a reasoning format stream the
``<think>`` block apart (:meth:`take_reasoning`), the content after it as text.
"""

from __future__ import annotations

from typing import Any

from glmtune.families import Family
from glmtune.infer.params import Reply


class TextStream:
    """Turns the growing token list of one row into text deltas."""

    def __init__(
        self, tokenizer: Any, family: Family, stop: list[str], tools_available: bool, opened: bool = False
    ) -> None:
        self.tokenizer = tokenizer
        self.family = family
        self.stop = [s for s in stop if s]
        self.tools_available = tools_available
        undecided = tools_available and not family.tool_calls_in_text
        self.mode: str | None = None if undecided else "text"  # "text" | "tool" | None (undecided)
        self.opened = opened  # the prompt ended inside a think block
        self.reasoning_emitted = ""
        self._reasoning = ""  # reasoning text not yet taken
        self.emitted = ""
        self.raw = ""
        self._prefix = self._read = 0  # decode window: ids[_prefix:_read] is already in ``raw``

    def _decode(self, ids: list[int]) -> str:
        """The text of ``ids`` so far, decoding only a short window each step (not the whole list)."""
        before = self.tokenizer.decode(ids[self._prefix : self._read])
        now = self.tokenizer.decode(ids[self._prefix :])
        if len(now) > len(before) and not now.endswith("\ufffd") and now.startswith(before):
            self.raw += now[len(before) :]
            self._prefix, self._read = self._read, len(ids)
        elif not now.startswith(before):  # the window is not prefix-stable here: decode everything
            self.raw, self._prefix, self._read = self.tokenizer.decode(ids), len(ids), len(ids)
        return self.raw

    def update(self, ids: list[int]) -> tuple[str, bool]:
        """(new text to show, whether a stop string ended the reply) after ``ids`` (stop tokens excluded)."""
        raw = self._decode(ids)
        hit = min((raw.index(s) for s in self.stop if s in raw), default=-1)
        if hit >= 0:
            return "", True  # the final reply (cut at the stop string) supplies the rest
        if self.family.reasoning:
            reasoning, raw = self.family.split_reasoning(raw.rstrip("\ufffd"), self.opened)
            self._reasoning += _extend(self.reasoning_emitted + self._reasoning, reasoning)
        if self.mode is None:
            if "\n" not in raw:
                return "", False
            self.mode = "tool" if raw.split("\n", 1)[0].strip() else "text"
        if self.mode == "tool":
            return "", False
        raw = raw.rstrip("\ufffd")
        for s in self.stop:  # a possible beginning of a stop string stays back
            for k in range(min(len(s) - 1, len(raw)), 0, -1):
                if raw.endswith(s[:k]):
                    raw = raw[:-k]
                    break
        shown = self.family.parse_reply(raw, self.tools_available)[0].rstrip()
        return self._delta(shown), False

    def take_reasoning(self) -> str:
        """Reasoning text that arrived since the last call."""
        out, self._reasoning = self._reasoning, ""
        self.reasoning_emitted += out
        return out

    def finish_reasoning(self, reply: Reply) -> str:
        """The rest of the reasoning once the reply is final."""
        self._reasoning += _extend(self.reasoning_emitted + self._reasoning, reply.reasoning)
        return self.take_reasoning()

    def finish(self, reply: Reply) -> str:
        """The rest of the content once the reply is final (nothing for a tool call, unless it is tagged text)."""
        if reply.tool_calls and not self.family.tool_calls_in_text:
            return ""
        return self._delta(reply.text)

    def _delta(self, shown: str) -> str:
        if len(shown) <= len(self.emitted) or not shown.startswith(self.emitted):
            return ""
        delta, self.emitted = shown[len(self.emitted) :], shown
        return delta


def _extend(shown: str, now: str) -> str:
    """What ``now`` adds to ``shown`` (trailing whitespace held back; nothing when it is not an extension)."""
    now = now.rstrip()
    return now[len(shown) :] if len(now) > len(shown) and now.startswith(shown) else ""
