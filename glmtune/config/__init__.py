"""Training configuration: glmtune YAML sections and the official finetune_demo YAML adapter."""

from glmtune.config.load import build_config, load_config, parse_overrides
from glmtune.config.official import load_official
from glmtune.config.schema import (
    DataConfig,
    GlmtuneTrainingArguments,
    MethodConfig,
    ModelConfig,
    TrainConfig,
)

__all__ = [
    "DataConfig",
    "GlmtuneTrainingArguments",
    "MethodConfig",
    "ModelConfig",
    "TrainConfig",
    "build_config",
    "load_config",
    "load_official",
    "parse_overrides",
]
