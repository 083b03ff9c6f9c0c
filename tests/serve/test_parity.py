"""One generation core: the same request with the same seed gives the same text from ``glmtune chat`` and the API;
greedy, the core gives what transformers' own ``generate`` gives."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import openai
import pytest
import torch

from glmtune.infer import Engine, GenerationParams
from glmtune.infer.loading import load_for_inference
from tests.serve.conftest import REPO, ThreadServer

QUERY = "你好，请介绍一下你自己"
CHAT_FLAGS = ["--seed", "1234", "--temperature", "1.3", "--top-p", "0.95", "--max-new-tokens", "24"]


@pytest.mark.slow
@pytest.mark.parametrize("family", ["chatglm3", "chatglm"])  # continuous batching / ChatGLM-6B's own generate
def test_same_seed_same_text_from_chat_and_api(family: str, tiny_dir: Callable[[str], Path]) -> None:
    model = tiny_dir(family)
    settings = {"seed": 1234, "temperature": 1.3, "top_p": 0.95, "max_tokens": 24}
    chat = subprocess.run(
        [sys.executable, "-m", "glmtune.cli", "chat", str(model), "--prompt", QUERY, *CHAT_FLAGS],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert chat.returncode == 0, chat.stderr[-2000:]
    server = ThreadServer(model, None, f"{family}-tiny")
    try:
        api = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=120)
        replies = [
            api.chat.completions.create(
                model=f"{family}-tiny", messages=[{"role": "user", "content": QUERY}], **settings
            ).choices[0]
            for _ in range(2)
        ]
    finally:
        server.close()
    texts = {r.message.content for r in replies}
    assert len(texts) == 1, "the API is not deterministic for one seed"
    text = texts.pop()
    assert text, "the tiny model should say something at temperature 1.3"
    assert chat.stdout.rstrip("\n") == text


@pytest.mark.parametrize("family", ["chatglm3", "glm4", "chatglm"])
def test_greedy_core_is_transformers_generate(family: str, tiny_dir: Callable[[str], Path]) -> None:
    """A left-padded batch: the core's ids are ``model.generate``'s (cut after the first stop token)."""
    engine = Engine(load_for_inference(tiny_dir(family)))
    prompts = [engine.prompt_ids([{"role": "user", "content": q}]) for q in ("你好", "hello " * 9, "天气怎么样？")]
    params = GenerationParams(max_new_tokens=12, do_sample=False)
    ours = engine.generate_ids(prompts, params)
    batch = engine.tokenizer.pad({"input_ids": prompts}, padding="longest", return_tensors="pt")
    with torch.no_grad():
        out = engine.model.generate(
            **batch,
            max_new_tokens=12,
            do_sample=False,
            eos_token_id=engine.stop_ids,
            pad_token_id=engine.tokenizer.pad_token_id,
        )
    for row, got in zip(out[:, batch["input_ids"].shape[1] :].tolist(), ours, strict=True):
        ends = [i for i, t in enumerate(row) if t in engine.stop_ids]
        assert got == (row[: ends[0] + 1] if ends else row)
