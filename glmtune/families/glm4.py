"""GLM-4-9B (chat and base): tiktoken vocabulary, Jinja chat template, JSON tool calls.

The official prompt is the Jinja ``chat_template`` shipped in the checkpoint's ``tokenizer_config.json``; when a
checkpoint has one, glmtune renders that very template (so every official tool type works). glmtune's own
template below covers function tools and is what ``make-tiny`` writes. Rendering follows transformers 4.40, which
the official template was written for: jinja's built-in ``tojson`` (sorted keys, ASCII-escaped, HTML-safe) and
trim/lstrip blocks. Literal special-token text inside messages stays text (the official tokenizer turned it into
control tokens, a prompt-injection path: ``compat_official_specials=True`` reproduces it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2.sandbox import ImmutableSandboxedEnvironment

from glmtune.families.base import GLM_OFFICIAL_MODULES, Family, FastTokenizerSpec, Message, ToolCall, Variant

TOOLS_SYSTEM_PROMPT = (
    "你是一个名为 ChatGLM 的人工智能助手。你是基于智谱AI训练的语言模型 GLM-4 模型开发的，"
    "你的任务是针对用户的问题和要求提供适当的答复和支持。"
)

CHAT_TEMPLATE = (
    "[gMASK]<sop>{% for item in messages %}"
    "{% if item['tools'] is defined %}<|system|>\n" + TOOLS_SYSTEM_PROMPT + "\n\n# 可用工具"
    "{% for tool in item['tools'] %}{% if tool['type'] == 'function' %}\n\n## {{ tool['function']['name'] }}\n\n"
    "{{ tool['function'] | tojson(indent=4) }}\n在调用上述函数时，请使用 Json 格式表示调用的参数。"
    "{% endif %}{% endfor %}{% endif %}"
    "{% if item['content'] %}<|{{ item['role'] }}|>{{ item['metadata'] }}\n{{ item['content'] }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


@lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # jinja's own tojson, as in 4.40
    return env.from_string(template)


@dataclass(frozen=True)
class GLM4Family(Family):
    def official_config_keys(self, config: dict[str, Any]) -> dict[str, Any]:
        return {"classifier_dropout": None, "num_hidden_layers": config["num_layers"]}

    def tiny_config(self, n_tokens: int) -> dict[str, Any]:
        """GLM-4's epsilon, and its eos list / pad as ids of the specials after the base vocabulary."""
        first = n_tokens - len(self.special_tokens)
        ids = {tok: first + i for i, tok in enumerate(self.special_tokens)}
        return {
            "layernorm_epsilon": 1.5625e-07,
            "eos_token_id": [ids["<|endoftext|>"], ids["<|user|>"], ids["<|observation|>"]],
            "pad_token_id": ids["<|endoftext|>"],
        }

    def tiny_tokenizer_config(self) -> dict[str, Any]:
        return {
            "tokenizer_class": "ChatGLM4Tokenizer",
            "auto_map": {"AutoTokenizer": ["tokenization_chatglm.ChatGLM4Tokenizer", None]},
            "additional_special_tokens": list(self.special_tokens),
            "chat_template": self.chat_template(),
            "clean_up_tokenization_spaces": False,
            "eos_token": "<|endoftext|>",
            "pad_token": "<|endoftext|>",
            "padding_side": "left",
            "model_max_length": 128000,
        }

    def render_text(self, messages: list[Message], add_generation_prompt: bool, template: str | None = None) -> str:
        """The prompt string the official ``apply_chat_template(tokenize=False)`` returns."""
        items = [{"metadata": "", **m} for m in messages]
        return _compile(template or CHAT_TEMPLATE).render(messages=items, add_generation_prompt=add_generation_prompt)

    def render_chat(
        self,
        tokenizer: Any,
        messages: list[Message],
        add_generation_prompt: bool = True,
        template: str | None = None,
        compat_official_specials: bool = False,
    ) -> list[int]:
        """Ids of the official chat template's text; specials only where the template writes them (the official
        tokenizer also made spellings inside messages control tokens: ``compat_official_specials=True``)."""
        try:
            return tokenizer.apply_chat_template(
                messages,
                add_generation_prompt=add_generation_prompt,
                chat_template=template or getattr(tokenizer, "chat_template", None) or CHAT_TEMPLATE,
                compat_official_specials=compat_official_specials,
            )
        except RecursionError:
            raise ValueError("a message or tool definition is nested too deeply to render") from None

    def chat_template(self) -> str:
        return CHAT_TEMPLATE

    def format_tool_call(self, call: ToolCall) -> Message:
        return {"role": "assistant", "metadata": call.name, "content": json.dumps(call.arguments, ensure_ascii=False)}

    def tool_call_start(self, tokenizer: Any, name: str) -> list[int]:
        return tokenizer.encode(f"{name}\n", add_special_tokens=False)

    def content_start(self, tokenizer: Any) -> list[int]:
        return self.tool_call_start(tokenizer, "")

    def parse_reply(self, text: str, tools_available: bool) -> tuple[str, list[ToolCall]]:
        """GLM-4 writes a tool call as ``name\\n{json arguments}``; anything else is plain content."""
        text = text.strip()
        if tools_available and "\n" in text:
            name, rest = text.split("\n", 1)
            name = name.strip()
            if name and " " not in name:
                try:
                    args = json.loads(rest.strip())
                except json.JSONDecodeError:
                    args = None
                if isinstance(args, dict):
                    return "", [ToolCall(name, args)]
        return text, []


GLM4 = GLM4Family(
    name="glm4",
    title="GLM-4-9B",
    architecture="glm",
    tokenizer_file="tokenizer.model",
    special_tokens=(
        "<|endoftext|>",
        "[MASK]",
        "[gMASK]",
        "[sMASK]",
        "<sop>",
        "<eop>",
        "<|system|>",
        "<|user|>",
        "<|assistant|>",
        "<|observation|>",
        "<|begin_of_image|>",
        "<|end_of_image|>",
        "<|begin_of_video|>",
        "<|end_of_video|>",
    ),
    stop_tokens=("<|user|>", "<|observation|>"),
    roles=("system", "user", "assistant", "observation"),
    lora_targets=("q_proj", "k_proj", "v_proj"),
    official_modules=GLM_OFFICIAL_MODULES,
    invalid_score_token=198,
    supports_tools=True,
    openai_tools=True,
    tokenizer_class="glmtune.tokenization.tiktoken_glm4:GLM4Tokenizer",
    renderer_class="glmtune.data.render.glm4:GLM4Renderer",
    fast_tokenizer=FastTokenizerSpec(
        "tiktoken", ("[gMASK]", "<sop>"), eos="<|endoftext|>", pad="<|endoftext|>", unk=None
    ),
    checkpoint_template=True,
    tiny_tokenizer="glm4_tokenizer.model",
    variants=(Variant("glm4", "THUDM/glm-4-9b-chat", {"seq_length": 131072, "rope_ratio": 500}),),
)
