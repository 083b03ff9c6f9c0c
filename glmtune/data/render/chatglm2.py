"""ChatGLM2-6B default renderer: the ``[Round N]`` prompt (``build_prompt``) as the official ptuning trains it.

ChatGLM-6B and ChatGLM2-6B have no role tokens: a record trains its last reply marked for loss, and every earlier
round is the history inside the prompt text — exactly the prompt ``chat()`` builds at inference. Ids:
``[gMASK] sop`` + sp(prompt) + sp(reply) + eos; labels on the reply and eos. Message text is text: unlike the official
``encode``, a ``sop`` piece inside it stays that piece (the ``chatglm2-ptuning`` mode keeps the official mapping).
"""

from __future__ import annotations

from typing import Any

from glmtune.data.record import Message, Record, RecordError
from glmtune.data.render.base import Encoder, Plan, Renderer, Turn, raise_unsupported, sentencepiece_encoder
from glmtune.data.validate import loss_flag
from glmtune.families.chatglm2 import pairs_from_messages


class RoundsRenderer(Renderer):
    """Shared by the two families whose prompt is text with numbered rounds."""

    def split(self, record: Record) -> tuple[str, str]:
        """(prompt text, reply) for the last trained reply of the record."""
        messages = record.messages
        for m in messages:
            if m["role"] == "observation" or m.get("tool_calls") or m.get("tools"):
                raise_unsupported(m.get("src", ""), self.family, "tool calls or observation messages")
        last = max((k for k, m in enumerate(messages) if m["role"] == "assistant" and loss_flag(m)), default=None)
        if last is None:
            raise RecordError("", "no assistant message to learn from")
        before: list[Message] = messages[:last]
        system, history, query = pairs_from_messages(before)
        return self.family.build_prompt(query, history, system), messages[last]["content"]

    def plan(self, record: Record) -> Plan:
        raise NotImplementedError


class ChatGLM2Renderer(RoundsRenderer):
    family_name = "chatglm2"

    def __init__(self, tokenizer: Any, family: Any) -> None:
        super().__init__(tokenizer, family)
        self.prefix = tuple(tokenizer.get_prefix_tokens())
        self.end = (tokenizer.eos_token_id,)

    def make_encoder(self) -> Encoder:
        return sentencepiece_encoder(self.tokenizer, official_encode=False)  # message text is text (no sop piece)

    def plan(self, record: Record) -> Plan:
        prompt, reply = self.split(record)
        return Plan(self.prefix, [Turn((), [prompt], False, keep_end=True), Turn((), [reply], True)], self.end)
