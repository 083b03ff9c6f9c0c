"""ChatGLM-6B (first generation): ``[Round N]\\n问：…\\n答：`` prompts counted from 0, bare query when no history.

The v1 architecture (2D positions, GELU, scaled residuals) is glmtune's own model class, and its tokenizer is the
``ice_text.model`` SentencePiece with ``<n>``/``<|tab|>``/``<|blank_N|>`` preprocessing; ``encode`` appends
``[gMASK] <sop>`` at the END of the prompt.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from glmtune.families.base import Variant
from glmtune.families.chatglm2 import RoundsFamily

_PUNCTS = ((",", "，"), ("!", "！"), (":", "："), (";", "；"), (r"\?", "？"))


def process_response_v1(response: str) -> str:
    """Official ChatGLM-6B ``process_response``: strip, and ASCII punctuation next to CJK → full width."""
    response = response.strip().replace("[[训练时间]]", "2023年")
    for ascii_p, full in _PUNCTS:
        response = re.sub(rf"([\u4e00-\u9fff]){ascii_p}", rf"\1{full}", response)
        response = re.sub(rf"{ascii_p}([\u4e00-\u9fff])", rf"{full}\1", response)
    return response


@dataclass(frozen=True)
class ChatGLMv1Family(RoundsFamily):
    def tokenizer_options(self, tokenizer_config: dict[str, Any]) -> dict[str, Any]:
        return {"num_image_tokens": int(tokenizer_config.get("num_image_tokens", 20000))}

    def build_prompt(self, query: str, history: list[tuple[str, str]], system: str = "") -> str:
        """The official ``chat()`` prompt: the bare query when the history is empty."""
        if not history and not system:
            return query
        prompt = system + "\n" if system else ""
        for i, (q, r) in enumerate(history):
            prompt += f"[Round {i}]\n问：{q}\n答：{r}\n"
        prompt += f"[Round {len(history)}]\n问：{query}\n答："
        return prompt

    def parse_reply(self, text: str, tools_available: bool) -> tuple[str, list]:
        return process_response_v1(text), []

    def chat_template(self) -> str:
        one = "[Round {{ ns.i }}]\n问：{{ ns.q }}\n答："
        return (
            "{% set sys = messages | selectattr('role', 'equalto', 'system') | map(attribute='content') | join('\n') %}"
            "{% set turns = messages | rejectattr('role', 'equalto', 'system') | list %}"
            "{% if sys %}{{ sys }}\n{% endif %}"
            "{% if turns | length == 1 and turns[0]['role'] == 'user' and not sys %}{{ turns[0]['content'] }}{% else %}"
            "{% set ns = namespace(i=0, q=none) %}"
            "{% for m in turns %}{% if m['role'] == 'user' %}"
            "{% if ns.q is not none %}" + one + "\n{% set ns.i = ns.i + 1 %}{% endif %}{% set ns.q = m['content'] %}"
            "{% else %}{% if ns.q is none %}{% set ns.q = '' %}{% endif %}" + one + "{{ m['content'] }}\n"
            "{% set ns.i = ns.i + 1 %}{% set ns.q = none %}{% endif %}{% endfor %}"
            "{% if ns.q is none %}{% set ns.q = '' %}{% endif %}" + one + "{% endif %}[gMASK]<sop>"
        )


CHATGLM = ChatGLMv1Family(
    name="chatglm",
    title="ChatGLM-6B",
    architecture="chatglm-v1",
    continuous_batching=False,
    tokenizer_file="ice_text.model",
    special_tokens=("[MASK]", "[gMASK]", "[sMASK]", "<unused_0>", "<sop>", "<eop>", "<ENC>", "<dBLOCK>"),
    stop_tokens=(),
    roles=("system", "user", "assistant"),
    lora_targets=("query_key_value",),
    official_modules={
        "query_key_value": ("query_key_value",),
        "dense": ("dense",),
        "dense_h_to_4h": ("dense_h_to_4h",),
        "dense_4h_to_h": ("dense_4h_to_h",),
    },
    invalid_score_token=5,
    variants=(Variant("chatglm", "THUDM/chatglm-6b", {}),),
    tokenizer_class="glmtune.tokenization.icetext_v1:ChatGLMv1Tokenizer",
    renderer_class="glmtune.data.render.chatglm:ChatGLMv1Renderer",
    tiny_tokenizer="ice_text.model",
    round_start=0,
    sep="\n",
)
