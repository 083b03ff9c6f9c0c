"""The gradio chat page (``glmtune webui``)."""
