"""The ``glmtune`` command line: it only parses. Each command is one module of ``glmtune/commands/`` (imported
lazily so ``glmtune --help`` stays fast) whose ``run_*`` function takes the parsed options by name.

User mistakes (``GlmtuneError``) print one line and exit 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os
import sys
from importlib import import_module
from pathlib import Path
from typing import Annotated, Any

import typer

from glmtune.errors import GlmtuneError, GlmtuneWarning

app = typer.Typer(
    name="glmtune",
    help="Fine-tune, evaluate, export and serve ChatGLM-6B, ChatGLM2/3-6B and GLM-4-9B checkpoints.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help wraps long option names; rich's tables cut them at 80 columns
)

_DEBUG = {"on": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
) -> None:
    _DEBUG["on"] = debug or bool(os.environ.get("GLMTUNE_DEBUG"))


# ---------------------------------------------------------------------------------------------------- options
# Options several commands share, declared once.
ModelArg = Annotated[Path, typer.Argument(help="Model directory, or a LoRA/P-Tuning checkpoint naming its base.")]
# every --family name (glmtune.families.VARIANTS; kept literal so --help imports no family code; a unit test checks it)
FAMILY_HELP = (
    "chatglm | chatglm2 | chatglm3 | chatglm3-base | chatglm3-32k | glm4 | glm4-0414 | glm-z1-0414 | glm4-moe | "
    "glm-4.7 | glm4-moe-lite | glm-moe-dsa"
)
AdapterOpt = Annotated[Path | None, typer.Option(help="LoRA adapter or P-Tuning checkpoint directory.")]
DtypeOpt = Annotated[str, typer.Option(help="auto | fp32 | bf16 | fp16")]
FamilyOpt = Annotated[str | None, typer.Option(help="Override family detection (e.g. chatglm2).")]
TemperatureOpt = Annotated[float, typer.Option(help="Sampling temperature (0 = greedy).")]
TopPOpt = Annotated[float, typer.Option(help="Nucleus sampling: keep the most likely tokens holding this mass.")]
SeedOpt = Annotated[int | None, typer.Option(help="Random seed for sampling.")]
HostOpt = Annotated[str, typer.Option(help="Interface to bind (anything but loopback exposes the server).")]
PortOpt = Annotated[int, typer.Option(help="Port to listen on.")]
ThinkingOpt = Annotated[
    bool | None,
    typer.Option(
        "--thinking/--no-thinking",
        help="Reasoning models (GLM-Z1, GLM-4.5+): think before answering (default: the template's own).",
    ),
]
ForceOpt = Annotated[bool, typer.Option(help="Replace the output directory if it exists.")]
LayoutOpt = Annotated[str, typer.Option(help="native (plain transformers) or original (THUDM layout)")]


def _run(command: str, **options: Any) -> Any:
    """``glmtune.commands.<command>.run_<command>(**options)``."""
    return getattr(import_module(f"glmtune.commands.{command}"), f"run_{command}")(**options)


# ---------------------------------------------------------------------------------------------------- commands
@app.command("make-tiny")
def make_tiny_cmd(
    out_dir: Annotated[Path, typer.Argument(help="Directory to write the checkpoint to.")],
    family: Annotated[
        str,
        typer.Option(help=FAMILY_HELP),
    ] = "chatglm3",
    fmt: Annotated[str, typer.Option("--format", help="safetensors (sharded, with index) or bin")] = "safetensors",
    seed: Annotated[int, typer.Option(help="Random seed of the weights.")] = 0,
    force: ForceOpt = False,
) -> None:
    """Write a tiny random-weight checkpoint in the ORIGINAL THUDM layout (deterministic, seconds on CPU)."""
    _run("make_tiny", **locals())


@app.command("convert")
def convert_cmd(
    src: Annotated[Path, typer.Argument(help="Checkpoint directory (original THUDM or native layout).")],
    dst: Annotated[Path, typer.Argument(help="Output directory (written atomically).")],
    to: LayoutOpt = "native",
    dtype: Annotated[str | None, typer.Option(help="Cast weights: fp32 | bf16 | fp16")] = None,
    family: FamilyOpt = None,
    force: ForceOpt = False,
) -> None:
    """Convert a checkpoint between the original THUDM layout and a native transformers directory."""
    _run("convert", **locals())


@app.command(
    "train",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def train_cmd(
    ctx: typer.Context,
    args: Annotated[
        list[str],
        typer.Argument(
            help="CONFIG.yaml [--section.key value ...], or the official form DATA_DIR MODEL_DIR CONFIG.yaml [yes|N]",
            show_default=False,
        ),
    ],
) -> None:
    """Fine-tune with LoRA, QLoRA, P-Tuning v2, freeze or full training (see configs/ for examples)."""
    _run("train", args=list(args) + list(ctx.args))


@app.command("chat")
def chat_cmd(
    model: ModelArg,
    adapter: AdapterOpt = None,
    prompt: Annotated[str | None, typer.Option(help="Answer this one prompt and exit.")] = None,
    system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
    tools: Annotated[Path | None, typer.Option(help="JSON file with tool definitions (ChatGLM3/GLM-4).")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Maximum tokens per reply.")] = 512,
    temperature: TemperatureOpt = 0.8,
    top_p: TopPOpt = 0.8,
    seed: SeedOpt = None,
    dtype: DtypeOpt = "auto",
    compat_official_chat: Annotated[
        bool, typer.Option(help="Reproduce the official chat() quirk of dropping the last generated token.")
    ] = False,
    thinking: ThinkingOpt = None,
) -> None:
    """Chat in the terminal (streaming, history, tools); --prompt for one-shot use."""
    _run("chat", **locals())


@app.command("predict")
def predict_cmd(
    model: ModelArg,
    data: Annotated[list[Path], typer.Option(help="Data file(s) in any supported format.")],
    output: Annotated[Path, typer.Option(help="JSONL output: id, prediction, reference, finish_reason, reasoning.")],
    adapter: AdapterOpt = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Data format (detected when omitted).")] = None,
    batch_size: Annotated[int, typer.Option(help="Left-padded generation batch size.")] = 8,
    max_new_tokens: Annotated[int, typer.Option(help="Maximum tokens per prediction.")] = 256,
    temperature: TemperatureOpt = 0.0,
    top_p: TopPOpt = 0.8,
    seed: SeedOpt = None,
    thinking: ThinkingOpt = None,
) -> None:
    """Generate the last assistant turn of every record in batches (progress bar); ids are kept; reasoning
    models' <think> text is written apart, as "reasoning"."""
    _run("predict", **locals())


@app.command("export")
def export_cmd(
    ckpt: Annotated[Path, typer.Argument(help="A LoRA/P-Tuning checkpoint (or training output) directory.")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Where to write the full model.")],
    layout: LayoutOpt = "native",
    base: Annotated[Path | None, typer.Option(help="Base model (default: the one the checkpoint names).")] = None,
    dtype: Annotated[str | None, typer.Option(help="fp32 | bf16 | fp16 (default: keep)")] = None,
    force: ForceOpt = False,
) -> None:
    """Merge a LoRA adapter (or attach a P-Tuning prefix) into a full checkpoint."""
    _run("export", **locals())


@app.command("eval")
def eval_cmd(
    model: Annotated[Path | None, typer.Argument(help="Model to generate with (omit with --predictions).")] = None,
    predictions: Annotated[Path | None, typer.Option(help="JSONL with prediction and reference fields.")] = None,
    data: Annotated[Path | None, typer.Option(help="Data file to generate predictions for (with MODEL).")] = None,
    adapter: AdapterOpt = None,
    variant: Annotated[str, typer.Option(help="finetune-demo (ChatGLM3) or ptuning (ChatGLM2/ChatGLM-6B)")] = (
        "finetune-demo"
    ),
    batch_size: Annotated[int, typer.Option(help="Generation batch size.")] = 8,
    max_new_tokens: Annotated[int, typer.Option(help="Maximum tokens per prediction.")] = 256,
) -> None:
    """Score predictions with the official ROUGE-1/2/L and BLEU-4; prints JSON."""
    _run("evaluate", **locals())


@app.command("demo")
def demo_cmd(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its checkpoint, adapter and plots.")] = Path(
        "runs/demo"
    ),
    steps: Annotated[int, typer.Option(help="Training steps.")] = 120,
) -> None:
    """Make a tiny ChatGLM3, LoRA-tune it on examples/, then chat with the result."""
    _run("demo", **locals())


@app.command("preprocess")
def preprocess_cmd(
    model: Annotated[Path, typer.Option(help="Checkpoint (or tokenizer) directory; its family is detected.")],
    output: Annotated[Path, typer.Option(help="Output JSONL: one sample per line, in input order.")],
    data: Annotated[list[Path] | None, typer.Option(help="Data file or directory (repeatable).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="Data format (default: detected per file).")] = None,
    columns: Annotated[
        str | None, typer.Option(help="Column/tag mapping: a JSON object, or LLaMA-Factory dataset_info.json:NAME.")
    ] = None,
    mode: Annotated[str, typer.Option(help="default, or an official mode (see docs/data.md).")] = "default",
    eval_: Annotated[bool, typer.Option("--eval", help="The eval variant of an official mode.")] = False,
    max_length: Annotated[int | None, typer.Option(help="default mode: truncate samples to N tokens.")] = None,
    max_seq_length: Annotated[int | None, typer.Option(help="chatglm3-multiturn length.")] = None,
    max_source_length: Annotated[int | None, typer.Option(help="input-output / ptuning source length.")] = None,
    max_target_length: Annotated[int | None, typer.Option(help="input-output / ptuning target length.")] = None,
    max_input_length: Annotated[int | None, typer.Option(help="chatglm3-finetune-demo input length.")] = None,
    max_output_length: Annotated[int | None, typer.Option(help="chatglm3-finetune-demo output length.")] = None,
    prompt_column: Annotated[str | None, typer.Option(help="ptuning: prompt column.")] = None,
    response_column: Annotated[str | None, typer.Option(help="ptuning: response column.")] = None,
    history_column: Annotated[str | None, typer.Option(help="ptuning: history column.")] = None,
    source_prefix: Annotated[str | None, typer.Option(help="ptuning: text put before every prompt.")] = None,
    ignore_pad_token_for_loss: Annotated[
        bool | None, typer.Option("--ignore-pad-token-for-loss/--no-ignore-pad-token-for-loss", help="ptuning.")
    ] = None,
    family: FamilyOpt = None,
    split: Annotated[str | None, typer.Option(help="Split of a datasets/train-dev-test directory.")] = None,
    skip_invalid: Annotated[bool, typer.Option(help="Skip (and list) invalid records instead of failing.")] = False,
    show: Annotated[int, typer.Option(help="Print the first K samples, loss-bearing tokens highlighted.")] = 0,
    stats: Annotated[bool, typer.Option(help="Print length percentiles and useful-token ratios.")] = False,
    num_proc: Annotated[int | None, typer.Option(help="Worker processes (default: one per core).")] = None,
    cache: Annotated[bool, typer.Option(help="Reuse/store the fingerprint cache ($GLMTUNE_CACHE).")] = True,
) -> None:
    """Render data files to token ids and labels (exact official prompt formats), validated, in input order."""
    _run("preprocess", **locals())


@app.command("serve")
def serve_cmd(
    model: ModelArg,
    adapter: AdapterOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 8000,
    api_key: Annotated[
        str | None, typer.Option(envvar="GLMTUNE_API_KEY", help="Require 'Authorization: Bearer KEY' (except /health).")
    ] = None,
    model_name: Annotated[str | None, typer.Option(help="Model id clients send (default: MODEL's dir name).")] = None,
    dtype: DtypeOpt = "auto",
    max_batch_size: Annotated[int, typer.Option(help="Requests generated together (1 = one at a time).")] = 32,
    max_tokens: Annotated[int, typer.Option(help="Completion tokens when a request sets no max_tokens.")] = 1024,
    max_tokens_limit: Annotated[int | None, typer.Option(help="Largest max_tokens a request may ask for.")] = None,
    temperature: TemperatureOpt = 0.8,
    top_p: TopPOpt = 0.8,
    max_body_bytes: Annotated[int, typer.Option(help="Largest accepted request body.")] = 8 << 20,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: all cores but one).")] = None,
    allowed_hosts: Annotated[
        str | None,
        typer.Option(
            envvar="GLMTUNE_ALLOWED_HOSTS",
            help="Comma-separated Host names answered besides loopback ('.example.com': a domain, '*': any). "
            "Without --api-key only loopback names are answered (DNS rebinding guard).",
        ),
    ] = None,
) -> None:
    """Serve an OpenAI-compatible API (/v1/chat/completions with streaming and tools, /v1/models, /health)."""
    _run("serve", **locals())


@app.command("webui")
def webui_cmd(
    model: ModelArg,
    adapter: AdapterOpt = None,
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 7860,
    dtype: DtypeOpt = "auto",
    system: Annotated[str, typer.Option(help="Initial system prompt.")] = "",
    max_tokens: Annotated[int, typer.Option(help="Initial max new tokens.")] = 512,
    temperature: TemperatureOpt = 0.8,
    top_p: TopPOpt = 0.8,
) -> None:
    """A gradio chat page: streaming, history, system prompt, generation settings, clear/regenerate."""
    _run("webui", **locals())


@app.command("board")
def board_cmd(
    workdir: Annotated[Path, typer.Option(help="Where runs started from the board keep their config and log.")] = Path(
        "runs/board"
    ),
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 7861,
    configs: Annotated[
        list[Path] | None, typer.Option(help="Directories of YAMLs to start from (default: ./configs and glmtune's).")
    ] = None,
) -> None:
    """A training web UI: configure, preview samples, run and compare `glmtune train` processes, then evaluate,
    chat and export."""
    _run("board", **locals())


def main() -> None:
    """Entry point of the ``glmtune`` script."""
    import warnings

    # transformers 5 / peft deprecation notices about their own internals are not actionable for glmtune users
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft)\.")
    default_format = warnings.formatwarning

    def one_line(message, category, *args, **kwargs):  # type: ignore[no-untyped-def]
        if issubclass(category, GlmtuneWarning):
            return f"warning: {message}\n"
        return default_format(message, category, *args, **kwargs)

    warnings.formatwarning = one_line
    try:
        app()
    except GlmtuneError as e:
        if _DEBUG["on"]:
            raise
        typer.secho(f"error: {e}", err=True, fg=typer.colors.RED)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
