"""Inference: the generation engine (chat, streaming, tool calls, batches) and batch prediction."""

from glmtune.infer.engine import Engine, GenerationParams, Reply, Thought

__all__ = ["Engine", "GenerationParams", "Reply", "Thought"]
