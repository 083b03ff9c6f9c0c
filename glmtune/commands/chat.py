"""``glmtune chat``: a terminal chat with streaming and history, or a one-shot ``--prompt``."""

from __future__ import annotations

from pathlib import Path

import typer

OBSERVATION = "observation:"
"""A chat line starting with this is a tool's result (an observation turn), not a user message."""


def run_chat(
    model: Path,
    adapter: Path | None,
    prompt: str | None,
    system: str | None,
    tools: Path | None,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int | None,
    dtype: str,
    compat_official_chat: bool,
    thinking: bool | None = None,
) -> None:
    from glmtune.infer import Engine, GenerationParams, Reply, Thought
    from glmtune.infer.loading import load_for_inference
    from glmtune.infer.tools import read_tools

    tool_defs = read_tools(tools) if tools else None
    switches = {} if thinking is None else {"enable_thinking": thinking}
    engine = Engine(
        load_for_inference(model, adapter, dtype=dtype),
        compat_official_chat=compat_official_chat,
        template_kwargs=switches,
    )
    params = GenerationParams(
        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed, do_sample=temperature > 0
    )
    history: list[dict] = []
    if system:
        history.append({"role": "system", "content": system})

    def answer(query: str, role: str = "user") -> None:
        nonlocal history
        messages = [*history, {"role": role, "content": query}]
        reply: Reply | None = None
        thinking = False
        for piece in engine.stream(messages, params, tools=tool_defs):
            if isinstance(piece, Reply):
                reply = piece
            elif isinstance(piece, Thought):  # the reasoning, dimmed, on lines of its own before the answer
                thinking = True
                typer.secho(piece, nl=False, dim=True)
            else:
                if thinking:
                    typer.echo()
                    thinking = False
                typer.echo(piece, nl=False)
        typer.echo()
        assert reply is not None
        for call in reply.tool_calls:
            typer.secho(f"[tool call] {call.name}({call.to_json()})", fg=typer.colors.CYAN)
        if reply.tool_calls and prompt is None:
            typer.secho(f"(send the tool's result as: {OBSERVATION} RESULT)", dim=True)
        if reply.note:
            typer.secho(f"warning: {reply.note}", err=True, fg=typer.colors.YELLOW)
        history = [*messages, reply.message]

    if prompt is not None:
        answer(prompt)
        return
    tools_hint = f"; '{OBSERVATION} RESULT' answers a tool call" if "observation" in engine.family.roles else ""
    typer.echo(
        f"{engine.family.title} ({model}) — type a message; 'clear' resets the history, 'exit' quits{tools_hint}."
    )
    while True:
        try:
            query = input("\nuser> ").strip()
        except EOFError:
            break
        if query in ("exit", "quit"):
            break
        if query == "clear":
            history = history[:1] if system else []
            continue
        role = "user"
        if query.lower().startswith(OBSERVATION):  # a tool's result, as the official CLI demos take it
            if "observation" not in engine.family.roles:
                typer.secho(f"{engine.family.title} has no observation turns (tools need ChatGLM3 or GLM-4)", err=True)
                continue
            query, role = query[len(OBSERVATION) :].strip(), "observation"
        if query:
            typer.echo("assistant> ", nl=False)
            answer(query, role)
