"""A tiny checkpoint plus a LoRA adapter that has memorised a few replies, so tests can assert exact answers.

The random tiny models produce noise; real tool-call round trips need a model that actually writes a tool call
in its family's format. A few dozen full-batch steps of LoRA on three conversations make greedy decoding
reproduce them exactly (checked here, so a failure shows up as a clear fixture error, not a flaky test).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from glmtune.families import ToolCall

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
QUESTION = "What is the weather in Paris?"
CALL = ToolCall("get_weather", {"city": "Paris"})
OBSERVATION = json.dumps({"temperature": 22, "sky": "sunny"})
FINAL_ANSWER = "It is sunny and 22 degrees in Paris."
GREETING = "hello"
GREETING_ANSWER = "Hello! I am a tiny GLM model."
THOUGHT = "The user wants an answer."


@dataclass
class Scripted:
    base: Path
    adapter: Path
    family: str


def conversations(family: Any) -> list[tuple[list[dict], dict]]:
    """(messages before the reply, the assistant reply) pairs the adapter learns (tools as the engine places them)."""
    from glmtune.infer.tools import tools_system_message

    think = {"reasoning_content": THOUGHT} if family.tool_calls_in_text else {}  # reasoning families think first
    tool_q = tools_system_message(family, [{"role": "user", "content": QUESTION}], [WEATHER_TOOL])
    call = family.format_tool_call(CALL)
    after = [*tool_q, call, {"role": "observation", "content": OBSERVATION}]  # the call as a client sends it back
    answer = {"role": "assistant", "metadata": "", "content": FINAL_ANSWER, **think}
    greet = [{"role": "user", "content": GREETING}]
    hello = {"role": "assistant", "metadata": "", "content": GREETING_ANSWER, **think}
    return [(tool_q, {**call, **think}), (after, answer), (greet, hello)]


def make_scripted(family_name: str, root: Path, steps: int = 300) -> Scripted:
    """Write ``root/<family>`` (tiny checkpoint) and ``root/<family>-lora`` (the memorising adapter)."""
    from peft import LoraConfig, get_peft_model

    from glmtune.infer.loading import load_for_inference
    from glmtune.model.tiny import make_tiny

    base = make_tiny(family_name, root / family_name)
    loaded = load_for_inference(base)
    tok, fam = loaded.tokenizer, loaded.family
    token_id = getattr(tok, "get_command", tok.convert_tokens_to_ids)
    stop = {"tool": token_id("<|observation|>"), "text": token_id("<|user|>")}
    rows: list[tuple[list[int], int]] = []
    for before, reply in conversations(fam):
        prompt = fam.render_chat(tok, before, add_generation_prompt=True)
        full = fam.render_chat(tok, [*before, reply], add_generation_prompt=False)
        assert full[: len(prompt)] == prompt, "prompt is not a prefix of the rendered conversation"
        full = [*full, stop["tool"] if reply.get("metadata") or reply.get("tool_calls") else stop["text"]]
        rows.append((full, len(prompt)))
    torch.manual_seed(0)
    model = get_peft_model(
        loaded.model,
        LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.0,
            task_type="CAUSAL_LM",
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_up_proj", "down_proj"],
        ),
    )
    width = max(len(r) for r, _ in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, (row, n_prompt) in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        labels[i, n_prompt : len(row)] = torch.tensor(row[n_prompt:])
        mask[i, : len(row)] = 1
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    model.train()
    target = labels[:, 1:]
    for step in range(steps):
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        hits = out.logits[:, :-1].argmax(-1)[target != -100] == target[target != -100]
        if bool(hits.all()) and step >= 5:  # teacher-forced argmax all right = greedy decoding reproduces it
            break
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        for row, n_prompt in rows:
            out = model.generate(
                input_ids=torch.tensor([row[:n_prompt]]),
                max_new_tokens=len(row) - n_prompt,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )
            assert out[0, n_prompt:].tolist() == row[n_prompt:], f"adapter did not memorise in {steps} steps"
    adapter = root / f"{family_name}-lora"
    model.save_pretrained(str(adapter), save_embedding_layers=False)
    return Scripted(base=base, adapter=adapter, family=family_name)
