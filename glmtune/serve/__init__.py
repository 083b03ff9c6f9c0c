"""OpenAI-compatible serving: FastAPI app, continuous batching over the engine, OpenAI-shaped errors."""

from glmtune.serve.app import create_app
from glmtune.serve.batcher import Batcher, Job
from glmtune.serve.openai_format import Defaults

__all__ = ["Batcher", "Defaults", "Job", "create_app"]
