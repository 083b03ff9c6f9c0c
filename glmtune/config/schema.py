"""The training config: four sections of dataclasses; ``training`` is transformers' own ``Seq2SeqTrainingArguments``.

```yaml
model:    {path, family, dtype, attn_implementation, quantization, ...}
data:     {train, eval, format, columns, mode, max_length, pack, ...}
method:   {name: lora|qlora|ptuning-v2|freeze|full, lora_r, ..., pre_seq_len, ...}
training: {output_dir, learning_rate, max_steps, ... any Seq2SeqTrainingArguments field}
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import Seq2SeqTrainingArguments

METHODS = ("lora", "qlora", "ptuning-v2", "freeze", "full")


@dataclass
class ModelConfig:
    """Which checkpoint to start from and how to load it."""

    path: str = ""
    family: str | None = None  # override detection (chatglm2 vs chatglm3 configs are identical)
    dtype: str = "auto"  # auto | fp32 | bf16 | fp16 (trainable parameters are kept in fp32 on CPU)
    attn_implementation: str = "sdpa"  # sdpa | eager
    quantization_bit: int | None = None  # 4 or 8: QLoRA (bitsandbytes)
    quant_type: str = "nf4"  # nf4 | fp4
    double_quant: bool = True
    compute_dtype: str = "auto"


@dataclass
class DataConfig:
    """Where the records are and how they become ids/labels (see docs/data.md)."""

    train: list[str] = field(default_factory=list)
    eval: list[str] = field(default_factory=list)
    test: list[str] = field(default_factory=list)
    format: str | None = None  # auto-detected when empty
    columns: dict[str, str] = field(default_factory=dict)
    dataset_info: str | None = None  # "FILE:NAME" of a LLaMA-Factory dataset_info.json: its columns (and file_name)
    mode: str = "default"
    # the YAML keys of the modes' settings: each mode's settings dataclass says which it reads and checks them
    # (glmtune/data/render/modes.py; default_mode.py, official/*.py), e.g. chatglm3-multiturn's max_seq_length is
    # max_length, an unset max_input_length is half of max_length
    max_length: int = 2048
    mask_history: bool = False  # default mode: train only the last reply of each conversation
    max_input_length: int | None = None
    max_output_length: int | None = None
    max_source_length: int | None = None
    max_target_length: int | None = None
    ignore_pad_token_for_loss: bool = True
    reasoning: str = "last"  # reasoning models: which assistant turns keep their reasoning (last | all | none)
    pack: bool = False
    num_proc: int | None = None
    skip_invalid: bool = False
    max_eval_samples: int | None = None


@dataclass
class MethodConfig:
    """The fine-tuning method and its hyper-parameters."""

    name: str = "lora"
    lora_r: int = 8
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_targets: list[str] | None = None  # native or official module names; family default when empty
    pre_seq_len: int = 128
    prefix_projection: bool = False
    freeze_trainable_layers: int = 2  # freeze: train the last N layers
    freeze_trainable_modules: list[str] | None = None  # freeze: or train the modules matching these names
    router_aux_loss_coef: float = 0.0  # MoE: add coef * router load-balancing loss to the loss (0: only logged)

    @property
    def uses_lora(self) -> bool:
        """LoRA adapters (``lora``, or ``qlora`` on quantised weights)."""
        return self.name in ("lora", "qlora")

    @property
    def quantized(self) -> bool:
        return self.name in ("qlora",)

    @property
    def uses_prefix(self) -> bool:
        """A P-Tuning v2 prefix encoder."""
        return self.name in ("ptuning-v2",)


@dataclass
class GlmtuneTrainingArguments(Seq2SeqTrainingArguments):
    """``Seq2SeqTrainingArguments`` plus glmtune's resume switch; every HF argument passes through."""

    resume: str | None = field(default=None, metadata={"help": "auto | a checkpoint directory | checkpoint number"})
    plot_loss: bool = field(default=True, metadata={"help": "write loss.png to output_dir after training"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "train into a directory of another run"})


@dataclass
class TrainConfig:
    """A whole training run."""

    model: ModelConfig
    data: DataConfig
    method: MethodConfig
    training: GlmtuneTrainingArguments
    generation: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # where the config came from (for messages)
    notes: list[str] = field(default_factory=list)  # keys of an official config that could not apply, and why
