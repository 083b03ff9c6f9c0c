"""What the families transformers loads natively share (GLM-4-0414, GLM-4.5/4.6/4.7, GLM-4.7-Flash, GLM-5).

Such a checkpoint ships its HF tokenizer (``tokenizer.json``) and its chat template (``chat_template.jinja``). Each
official template is a :class:`Style`: glmtune's own Python rendering of it (plus a Jinja text of our own that
``make-tiny`` writes), as a list of :class:`Block` s, one per message, so that chat prompts and training samples
(with per-message loss masks) come from the same code. Ids equal ``apply_chat_template`` with the checkpoint's
template (tested on a corpus) with one deliberate difference: text inside a message always stays text, so a
special-token spelling in a user's message is never a control token (the template's tokenization makes it one).
The one exception is a trailing ``/nothink`` in a user message, the documented switch of the GLM-4.5 models.

Which style a checkpoint uses is found by rendering its own template on probe conversations and comparing.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from glmtune.families.base import Family, Message

log = logging.getLogger("glmtune.families")

Seg = tuple[bool, str]
"""A piece of prompt text: (template text?, text). Template text may hold special tokens (split out when
encoding); message text is always plain text."""


def lit(text: str) -> Seg:
    return (True, text)


def txt(text: str) -> Seg:
    return (False, text)


@dataclass
class Block:
    """One rendered message (or the tool list / generation prompt): ``head`` special tokens, then ``body``."""

    role: str  # system | user | assistant | observation | tools | prompt
    head: list[str]
    body: list[Seg]
    index: int | None = None  # the message it renders


@dataclass(frozen=True)
class Options:
    """Template switches: ``enable_thinking`` (None = the template's default: on); ``reasoning`` = which
    assistant turns keep their reasoning: ``template`` (as the official template renders it), ``last`` (turns
    after the last user message), ``all`` or ``none``."""

    enable_thinking: bool | None = None
    reasoning: str = "template"


def split_think(message: Message) -> tuple[str, str]:
    """(reasoning, content) of an assistant message: ``reasoning_content``, or a ``<think>…</think>`` lead."""
    content = message.get("content") or ""
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str):
        return reasoning, content
    if "</think>" not in content:
        return "", content
    parts = content.split("</think>")
    return parts[0].rstrip("\n").split("<think>")[-1].lstrip("\n"), parts[-1].lstrip("\n")


def holds_tools_only(message: Message) -> bool:
    """A system message that only carries tool definitions (they are prompted apart; the message is not shown)."""
    return message["role"] == "system" and bool(message.get("tools")) and not message.get("content")


def last_user(messages: list[Message]) -> int:
    return max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)


class Style:
    """One official chat template (subclasses): Python rendering and our own Jinja twin."""

    name: str = ""
    jinja: str = ""
    template_reasoning = "last"  # which turns the official template shows with their reasoning
    has_reasoning = True  # False: the template has no reasoning format
    clear_thinking = False  # the template takes clear_thinking (false: every turn keeps its reasoning)

    def keeps(self, options: Options, index: int, last: int) -> bool:
        """Whether assistant message ``index`` is rendered with its reasoning (``last``: the last user message)."""
        mode = self.template_reasoning if options.reasoning == "template" else options.reasoning
        return mode == "all" or (mode == "last" and index > last)

    def blocks(self, messages: list[Message], tools: list[Any] | None, options: Options) -> list[Block]:
        raise NotImplementedError

    def generation_prompt(self, options: Options) -> Block:
        raise NotImplementedError

    def render(
        self, messages: list[Message], tools: list[Any] | None, add_generation_prompt: bool, options: Options
    ) -> list[Block]:
        out = [Block("prefix", ["[gMASK]", "<sop>"], []), *self.blocks(messages, tools, options)]
        if add_generation_prompt:
            out.append(self.generation_prompt(options))
        return out

    def text(
        self, messages: list[Message], tools: list[Any] | None, add_generation_prompt: bool, options: Options
    ) -> str:
        """The prompt as one string (what ``apply_chat_template(tokenize=False)`` returns)."""
        blocks = self.render(messages, tools, add_generation_prompt, options)
        return "".join("".join(b.head) + "".join(t for _, t in b.body) for b in blocks)

    def opens_reasoning(self, options: Options) -> bool:
        """Whether the generation prompt leaves a think block open (the reply starts inside it)."""
        return False


# ---------------------------------------------------------------------------------------------- encoding
class TokenText:
    """A native tokenizer's pieces: ids of special tokens, and plain-text encoding that never makes one."""

    def __init__(self, tokenizer: Any) -> None:
        from tokenizers import Tokenizer

        self.added: dict[str, int] = dict(tokenizer.get_added_vocab())
        data = json.loads(tokenizer.backend_tokenizer.to_str())
        data["added_tokens"] = []
        data["post_processor"] = None
        self.plain = Tokenizer.from_str(json.dumps(data))
        names = sorted(self.added, key=len, reverse=True)
        self.split_re = re.compile("(" + "|".join(map(re.escape, names)) + ")") if names else None

    def encode_plain(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.plain.encode_batch(texts, add_special_tokens=False)] if texts else []

    def pieces(self, segs: list[Seg]) -> list[str | int]:
        """Text runs (to encode as plain text) and special-token ids, in order."""
        out: list[str | int] = []
        run = ""
        for is_template, text in segs:
            parts = self.split_re.split(text) if is_template and self.split_re is not None else [text]
            for k, part in enumerate(parts):
                if k % 2:
                    if run:
                        out.append(run)
                        run = ""
                    out.append(self.added[part])
                else:
                    run += part
        if run:
            out.append(run)
        return out

    def ids(self, segs: list[Seg]) -> list[int]:
        pieces = self.pieces(segs)
        texts = iter(self.encode_plain([p for p in pieces if isinstance(p, str)]))
        out: list[int] = []
        for p in pieces:
            if isinstance(p, str):
                out += next(texts)
            else:
                out.append(p)
        return out


def token_text(tokenizer: Any) -> TokenText:
    """The (cached) :class:`TokenText` of ``tokenizer``."""
    cached = getattr(tokenizer, "_glmtune_token_text", None)
    if cached is None:
        cached = TokenText(tokenizer)
        tokenizer._glmtune_token_text = cached
    return cached


# ---------------------------------------------------------------------------------------------- the family
PROBES: tuple[tuple[list[Message], list[Any] | None], ...] = (
    (
        [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
        None,
    ),
    (
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>r</think>a"}],
        [{"type": "function", "function": {"name": "f", "parameters": {}}}],
    ),
)


@dataclass(frozen=True)
class NativeFamily(Family):
    """A family whose checkpoints are plain transformers directories (``model_class`` in transformers)."""

    model_type: str = ""
    model_class: str = ""
    renderer_class: str = "glmtune.data.render.native:NativeRenderer"
    tiny_tokenizer: str = "glm4_tokenizer.model"  # make-tiny builds the tokenizer.json from these ranks
    styles: tuple[Style, ...] = ()
    hf_specials: tuple[str, ...] = ()  # the special tokens of the official tokenizer, in id order (make-tiny)
    generation_stops: tuple[str, ...] = ("<|endoftext|>", "<|user|>", "<|observation|>")
    lora_presets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tiny: dict[str, Any] = field(default_factory=dict)  # config keys of the make-tiny checkpoint
    moe: bool = False  # routed experts: router auxiliary loss logged in training

    # ------------------------------------------------------------ styles
    def style(self, name: str = "") -> Style:
        for s in self.styles:
            if s.name == (name or self.styles[0].name):
                return s
        raise KeyError(name)

    def style_of(self, tokenizer: Any) -> Style:
        """The style of ``tokenizer``'s chat template (found by rendering probes; cached on the tokenizer)."""
        cached = getattr(tokenizer, "_glmtune_style", None)
        if cached is not None:
            return cached
        found = self._detect_style(getattr(tokenizer, "chat_template", None), tokenizer)
        tokenizer._glmtune_style = found
        return found

    def _detect_style(self, template: str | None, tokenizer: Any) -> Style:
        if not template:
            return self.style()
        for style in self.styles:
            if all(_template_text(tokenizer, template, m, t) == style.text(m, t, True, Options()) for m, t in PROBES):
                return style
        log.warning(
            "%s: the checkpoint's chat template is not one glmtune knows; using %s", self.title, self.style().name
        )
        return self.style()

    def chat_template(self) -> str:
        return self.style().jinja

    # ------------------------------------------------------------ prompts
    def blocks(
        self,
        tokenizer: Any,
        messages: list[Message],
        add_generation_prompt: bool = True,
        tools: list[Any] | None = None,
        options: Options | None = None,
    ) -> list[Block]:
        """The prompt as blocks; tool definitions from ``tools`` or the system messages' ``tools``."""
        tools = list(tools or []) + [t for m in messages if m["role"] == "system" for t in (m.get("tools") or [])]
        return self.style_of(tokenizer).render(messages, tools or None, add_generation_prompt, options or Options())

    def render_chat(
        self,
        tokenizer: Any,
        messages: list[Message],
        add_generation_prompt: bool = True,
        tools: list[Any] | None = None,
        enable_thinking: bool | None = None,
        clear_thinking: bool | None = None,
        compat_official_specials: bool = False,
    ) -> list[int]:
        """Ids of the official template (``enable_thinking``/``clear_thinking`` as the templates take them), message
        text kept as text; ``compat_official_specials``: the template text tokenized as ``apply_chat_template``
        does (special-token spellings inside messages become control tokens)."""
        style = self.style_of(tokenizer)
        options = Options(enable_thinking, "all" if clear_thinking is False and style.clear_thinking else "template")
        blocks = self.blocks(tokenizer, messages, add_generation_prompt, tools, options)
        if compat_official_specials:
            return tokenizer.encode("".join(text for _, text in flat(blocks)), add_special_tokens=False)
        return token_text(tokenizer).ids(flat(blocks))

    def reasoning_end_id(self, tokenizer: Any) -> int | None:
        """The special token that closes a reply's reasoning (None: the template writes no think blocks)."""
        return token_text(tokenizer).added.get("</think>") if self.style_of(tokenizer).has_reasoning else None

    def opens_reasoning(self, tokenizer: Any, enable_thinking: bool | None = None) -> bool:
        return self.style_of(tokenizer).opens_reasoning(Options(enable_thinking))

    def stop_token_ids(self, tokenizer: Any) -> list[int]:
        added = token_text(tokenizer).added
        ids = [tokenizer.eos_token_id, *getattr(tokenizer, "glmtune_stop_ids", [])]
        ids += [added[t] for t in self.generation_stops if t in added]
        return list(dict.fromkeys(i for i in ids if i is not None))

    def split_reasoning(self, text: str, opened: bool = False) -> tuple[str, str]:
        if not self.reasoning:
            return "", text
        if "</think>" in text:
            head, rest = text.split("</think>", 1)
            return head.split("<think>")[-1].strip(), rest.strip()
        stripped = text.lstrip()
        if stripped.startswith("<think>"):
            return stripped[len("<think>") :].strip(), ""
        return (text.strip(), "") if opened else ("", text)

    def lora_targets_of(self, name: str) -> tuple[str, ...] | None:
        """The module/parameter patterns of a LoRA preset name (None: not a preset)."""
        return self.lora_presets.get(name)


def flat(blocks: list[Block]) -> list[Seg]:
    return [seg for b in blocks for seg in ([lit(t) for t in b.head] + b.body)]


def _template_text(tokenizer: Any, template: str, messages: list[Message], tools: list[Any] | None) -> str | None:
    from transformers.utils.chat_template_utils import render_jinja_template

    try:
        rendered, _ = render_jinja_template(
            conversations=[messages], tools=tools, chat_template=template, add_generation_prompt=True
        )
    except Exception:  # a template that cannot render the probe is not this style
        return None
    return rendered[0]
