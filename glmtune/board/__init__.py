"""``glmtune board``: a training web UI — configure, preview, run real ``glmtune train`` processes, compare, then
evaluate, chat and export. ``app`` is the gradio page, ``session`` its callbacks, ``form``/``checks`` the config,
``runs`` the processes, ``curves`` the progress and loss curves."""
