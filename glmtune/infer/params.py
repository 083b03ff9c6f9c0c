"""What a generation request asks for (:class:`GenerationParams`) and what it gives back (:class:`Reply`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from glmtune.families import Message, ToolCall


@dataclass
class GenerationParams:
    """Sampling parameters; ``temperature == 0`` or ``do_sample=False`` means greedy."""

    max_new_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.8
    top_k: int = 0
    do_sample: bool = True
    repetition_penalty: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)


@dataclass
class Reply:
    """One generated assistant turn."""

    text: str
    tool_calls: list[ToolCall]
    finish_reason: str  # "stop" | "length" | "tool_calls"
    prompt_tokens: int
    completion_tokens: int
    message: Message  # the assistant message to append to the history
    note: str = ""  # why a reply is empty although tokens were generated (see Engine.finish)
    reasoning: str = ""  # the reply's <think> block (families with a reasoning format), apart from ``text``
