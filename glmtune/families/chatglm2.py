"""ChatGLM2-6B: ``[Round N]\\n\\n问：…\\n\\n答：`` prompts (rounds from 1) after ``[gMASK] sop``; no roles, no tools."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from glmtune.families.base import GLM_OFFICIAL_MODULES, Family, FastTokenizerSpec, Message, Variant


def pairs_from_messages(messages: list[Message]) -> tuple[str, list[tuple[str, str]], str]:
    """(system text, [(query, response)...], final query) of a user/assistant alternation."""
    system = "\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages if m["role"] != "system"]
    history: list[tuple[str, str]] = []
    query = ""
    pending: str | None = None
    for m in turns:
        if m["role"] == "user":
            if pending is not None:
                history.append((pending, ""))
            pending = m["content"]
        elif m["role"] == "assistant":
            history.append((pending or "", m["content"]))
            pending = None
        else:
            raise ValueError(f"role {m['role']!r} is not supported by this family")
    if pending is not None:
        query = pending
    return system, history, query


@dataclass(frozen=True)
class RoundsFamily(Family):
    """Families whose chat prompt is text with numbered rounds (ChatGLM-6B and ChatGLM2-6B)."""

    round_start: int = 1
    sep: str = "\n\n"

    def tokenizer_options(self, tokenizer_config: dict[str, Any]) -> dict[str, Any]:
        return {"role_tokens": False}  # ChatGLM2's SentencePiece tokenizer has no role tokens

    def content_start(self, tokenizer: Any) -> list[int]:
        return []  # the reply is the text after "答："

    def build_prompt(self, query: str, history: list[tuple[str, str]], system: str = "") -> str:
        """The official ``build_prompt`` / ``build_inputs`` string."""
        prompt = system + self.sep if system else ""
        for i, (q, r) in enumerate(history):
            prompt += f"[Round {i + self.round_start}]{self.sep}问：{q}{self.sep}答：{r}{self.sep}"
        prompt += f"[Round {len(history) + self.round_start}]{self.sep}问：{query}{self.sep}答："
        return prompt

    def render_chat(
        self,
        tokenizer: Any,
        messages: list[Message],
        add_generation_prompt: bool = True,
        compat_official_specials: bool = False,
    ) -> list[int]:
        """The official ``tokenizer(build_prompt(...))`` ids; with message text kept as text unless
        ``compat_official_specials`` (the official tokenizer splits special spellings / maps the ``sop`` piece)."""
        system, history, query = pairs_from_messages(messages)
        prompt = self.build_prompt(query, history, system)
        if compat_official_specials:
            return tokenizer.encode(prompt)
        return tokenizer.build_inputs_with_special_tokens(tokenizer.encode_plain(prompt))

    def chat_template(self) -> str:
        """Jinja twin of :meth:`render_chat` (the tokenizer turns the leading ``[gMASK]sop`` into the prefix)."""
        sep = self.sep
        one = "[Round {{ ns.i }}]" + sep + "问：{{ ns.q }}" + sep + "答："
        return (
            "[gMASK]sop{% set sys = messages | selectattr('role', 'equalto', 'system') | map(attribute='content')"
            " | join('\n') %}{% if sys %}{{ sys }}" + sep + "{% endif %}"
            "{% set ns = namespace(i=" + str(self.round_start) + ", q=none) %}"
            "{% for m in messages if m['role'] != 'system' %}"
            "{% if m['role'] == 'user' %}"
            "{% if ns.q is not none %}" + one + sep + "{% set ns.i = ns.i + 1 %}{% endif %}"
            "{% set ns.q = m['content'] %}"
            "{% else %}{% if ns.q is none %}{% set ns.q = '' %}{% endif %}"
            + one
            + "{{ m['content'] }}"
            + sep
            + "{% set ns.i = ns.i + 1 %}{% set ns.q = none %}{% endif %}"
            "{% endfor %}"
            "{% if ns.q is none %}{% set ns.q = '' %}{% endif %}" + one
        )


SENTENCEPIECE_FAST = FastTokenizerSpec("sentencepiece", ("[gMASK]", "sop"), eos="</s>", pad="<unk>", unk="<unk>")
"""The ``tokenizer.json`` of the ChatGLM2/3 SentencePiece vocabulary."""

CHATGLM2 = RoundsFamily(
    name="chatglm2",
    title="ChatGLM2-6B",
    architecture="glm",
    tokenizer_file="tokenizer.model",
    special_tokens=("[MASK]", "[gMASK]", "[sMASK]", "sop", "eop"),
    stop_tokens=(),
    roles=("system", "user", "assistant"),
    lora_targets=("q_proj", "k_proj", "v_proj"),
    official_modules=GLM_OFFICIAL_MODULES,
    invalid_score_token=5,
    variants=(Variant("chatglm2", "THUDM/chatglm2-6b", {"seq_length": 32768}),),
    tokenizer_class="glmtune.tokenization.sentencepiece_glm:SentencePieceGLMTokenizer",
    encoder_class="glmtune.tokenization.sp_core:SentencePieceCore",
    renderer_class="glmtune.data.render.chatglm2:ChatGLM2Renderer",
    fast_tokenizer=SENTENCEPIECE_FAST,
    tiny_tokenizer="chatglm_sp.model",
    round_start=1,
    sep="\n\n",
)
