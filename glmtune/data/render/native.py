"""Default renderer of the native families (GLM-4-0414, GLM-4.5+): the family's own blocks, one turn each.

The blocks are the ones ``render_chat`` encodes (so sample ids equal the chat template's ids), with ``eos`` after
the conversation. Each assistant message is a trained turn unless it says ``loss: false``; its role token is not
trained, the token after it is (the next role token or eos), as for every family. Reasoning (``reasoning_content``
or a ``<think>…</think>`` lead) is kept as ``data.reasoning`` says: ``last`` (turns after the last user message, as
the templates render it), ``all`` or ``none``. A GLM-4 style tool call (``metadata`` = tool name, ``content`` = JSON
arguments) is read as a ``tool_calls`` entry for the XML-call families.
"""

from __future__ import annotations

import json
from typing import Any

from glmtune.data.record import Message, Record, RecordError
from glmtune.data.render.base import Encoder, Piece, Plan, Renderer, Turn
from glmtune.data.validate import loss_flag
from glmtune.families.native import Options, token_text


class NativeRenderer(Renderer):
    family_name = "native"

    def __init__(self, tokenizer: Any, family: Any) -> None:
        self.text = token_text(tokenizer)
        super().__init__(tokenizer, family)
        self.style = family.style_of(tokenizer)
        self.end = (tokenizer.eos_token_id,)

    def make_encoder(self) -> Encoder:
        encode = self.text.encode_plain
        return lambda texts, threads: encode(texts)

    def messages(self, record: Record) -> list[Message]:
        out = []
        for m in record.messages:
            msg = {k: v for k, v in m.items() if k not in ("src", "loss")}
            if m["role"] == "assistant" and not self.style.has_reasoning and m.get("reasoning_content"):
                raise RecordError(m.get("src", ""), f"{self.family.title} has no reasoning format (reasoning_content)")
            if m["role"] == "assistant" and m.get("metadata") and getattr(self.style, "xml_calls", False):
                msg = _as_call(m)
            out.append(msg)
        return out

    def plan(self, record: Record) -> Plan:
        messages = self.messages(record)
        options = Options(reasoning=self.reasoning)
        blocks = self.family.blocks(self.tokenizer, messages, False, record.tools, options)
        added = self.text.added
        prefix = tuple(added[t] for t in blocks[0].head)
        turns = []
        for block in blocks[1:]:
            trained = block.index is not None and loss_flag(record.messages[block.index])
            head = tuple(added[t] for t in block.head)
            body: list[Piece] = [p if isinstance(p, str) else (p,) for p in self.text.pieces(block.body)]
            turns.append(Turn(head, body, trained))
        return Plan(prefix, turns, self.end)


def _as_call(m: Message) -> Message:
    """A GLM-4 style tool-call message (``metadata`` + JSON arguments) as a ``tool_calls`` message."""
    try:
        args = json.loads(m.get("content") or "{}")
    except json.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise RecordError(m.get("src", ""), "a message with metadata (a tool call) needs JSON object arguments")
    return {"role": "assistant", "content": "", "tool_calls": [{"name": m["metadata"], "arguments": args}]}
