"""The board's callbacks, independent of gradio (the page in :mod:`glmtune.board.app` wires them; tests call them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from glmtune.board import after, curves
from glmtune.board.checks import Checked, check_form
from glmtune.board.form import FIELDS, OTHER, config_from_form, find_configs, load_yaml_form, to_yaml
from glmtune.board.runs import RunManager, RunView
from glmtune.errors import GlmtuneError

KEYS = [f.key for f in FIELDS] + [OTHER]  # the order of the form's values in every callback


@dataclass
class RunPanel:
    """What the run tab shows for the selected run and for all runs (plots drawn on demand)."""

    status: str
    percent: float
    log: str
    table: list[list[Any]]
    selected: list[RunView]
    chosen: list[RunView]  # the runs to compare

    @property
    def curve_points(self) -> int:
        return curves.points(self.selected)

    @property
    def compare_points(self) -> int:
        return curves.points(self.chosen)

    def curve(self) -> Any:
        return curves.curve_figure(self.selected, with_name=False)

    def compare(self) -> Any:
        return curves.curve_figure(self.chosen, title="loss, overlaid")


class Board:
    """One board: its runs, the config directories it offers, and (later) the model loaded for chat."""

    def __init__(self, workdir: str | Path, config_roots: list[Path] | None = None, cwd: str | Path | None = None):
        self.runs = RunManager(workdir, cwd=cwd)
        self.config_roots = config_roots or []
        self.chat = after.ChatModel()

    # ------------------------------------------------------------------------------------------ configure
    def config_choices(self) -> list[str]:
        return find_configs(self.config_roots)

    @staticmethod
    def values(args: tuple[Any, ...] | list[Any]) -> dict[str, Any]:
        """The form's values from the positional arguments of a callback (in :data:`KEYS` order)."""
        return dict(zip(KEYS, args, strict=True))

    def load(self, path: str) -> tuple[dict[str, Any], str]:
        """Form values from a YAML file, and a message."""
        if not str(path or "").strip():
            raise GlmtuneError("choose a YAML under configs/ or type the path of your own")
        values = load_yaml_form(path)
        message = f"loaded {path}"
        if values["training.output_dir"]:  # runs of one YAML would share (and resume) one directory
            message += f"; output directory: the run's own (the YAML says {values['training.output_dir']})"
            values["training.output_dir"] = ""
        return values, message

    def config(self, values: dict[str, Any], run_name: str) -> dict[str, Any]:
        """The sections the run will get, with the output directory filled in."""
        raw = config_from_form(values)
        training = raw.setdefault("training", {})
        if not training.get("output_dir") and run_name.strip():
            training["output_dir"] = str(self.runs.default_output_dir(run_name.strip()))
        return raw

    def yaml_text(self, values: dict[str, Any], run_name: str) -> str:
        """The YAML the run will get (or a comment saying what is wrong)."""
        try:
            return to_yaml(self.config(values, run_name))
        except GlmtuneError as e:
            return f"# {e}\n"

    def check(self, values: dict[str, Any], run_name: str | None = None) -> Checked:
        return check_form(values, run_name)

    def save_yaml(self, values: dict[str, Any], run_name: str, path: str) -> str:
        """Write the YAML to ``path`` (checked first); a message."""
        target = Path(str(path or "").strip())
        if not str(target) or str(target) == ".":
            raise GlmtuneError("save as: give a file name, e.g. my-run.yaml")
        checked = check_form(values, None, touch_files=False)
        if checked.errors:
            raise GlmtuneError(next(iter(checked.errors.values())))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(to_yaml(self.config(values, run_name)), encoding="utf-8")
        tmp.replace(target)
        return f"saved {target} — run it with: glmtune train {target}"

    def launch(self, values: dict[str, Any], run_name: str) -> tuple[Checked, str]:
        """Check the form; when it is valid, start the run. (the check, a message)"""
        checked = check_form(values, run_name)
        if not checked.ok:
            return checked, "not started: fix the fields marked below"
        if (self.runs.run_dir(run_name.strip()) / "board.json").exists():
            checked.errors["run.name"] = f"run name {run_name.strip()!r} is taken: choose another, or resume that run"
            return checked, "not started: fix the fields marked below"
        assert checked.raw is not None
        raw = self.config(values, run_name)
        used = self.runs.output_in_use(Path(raw["training"]["output_dir"]))
        if used:
            checked.errors["training.output_dir"] = used
            return checked, "not started: fix the fields marked below"
        self.runs.launch(run_name, raw)
        return checked, f"started {run_name.strip()}"

    def next_name(self, name: str) -> str:
        """A free run name like ``name`` (``lora-2`` after ``lora``)."""
        base = name.strip() or "run"
        stem, _, num = base.rpartition("-")
        stem, n = (stem, int(num)) if num.isdigit() and stem else (base, 1)
        candidate = base
        while (self.runs.run_dir(candidate) / "board.json").exists():
            n += 1
            candidate = f"{stem}-{n}"
        return candidate

    def preview(self, values: dict[str, Any], run_name: str, k: int) -> tuple[Checked, str, str]:
        """(the check, the samples as HTML, the statistics as markdown) of the form's training data."""
        from glmtune.board.preview import render_preview
        from glmtune.data.stats import format_stats

        checked = check_form(values, None)
        if not checked.ok:
            return checked, "", "⚠ fix the fields marked in Configure: " + next(iter(checked.errors.values()))
        try:
            shown = render_preview(self.config(values, run_name), max(1, int(k)))
        except GlmtuneError as e:
            return checked, "", f"⚠ {e}"
        notes = "".join(f"\n- {n}" for n in shown.notes[:20])
        stats = f"**{shown.count} training samples**\n```\n{format_stats(shown.stats)}\n```{notes}"
        return checked, shown.samples_html, stats

    # ------------------------------------------------------------------------------------------ runs
    def views(self, names: list[str] | None = None) -> list[RunView]:
        out = []
        for name in self.runs.names() if names is None else names:
            try:
                out.append(self.runs.view(name))
            except GlmtuneError:
                continue
        return out

    def panel(self, selected: str | None, compare: list[str] | None) -> RunPanel:
        """Everything the run tab refreshes."""
        all_views = self.views()
        by_name = {v.name: v for v in all_views}
        view = by_name.get(selected or "")
        chosen = [by_name[n] for n in (compare or []) if n in by_name]
        return RunPanel(
            status=curves.progress_line(view) if view else "no run selected",
            percent=curves.percent(view) if view else 0.0,
            log=self.runs.log_tail(view.name) if view else "",
            table=[curves.summary_row(v) for v in all_views],
            selected=[view] if view else [],
            chosen=chosen,
        )

    def stop(self, name: str | None) -> str:
        if not name:
            raise GlmtuneError("choose a run first")
        return self.runs.stop(name)

    def resume(self, name: str | None) -> str:
        if not name:
            raise GlmtuneError("choose a run first")
        return self.runs.resume(name)

    # ------------------------------------------------------------------------------------------ after
    def checkpoints(self, name: str | None) -> list[str]:
        """The run's final output and checkpoints (newest first)."""
        if not name:
            return []
        return after.checkpoints(Path(self.runs.record(name).output_dir))

    def eval_data(self, name: str | None) -> str:
        """The data a run is evaluated on by default: its eval file, else its first training file."""
        if not name:
            return ""
        import yaml

        raw = yaml.safe_load((self.runs.run_dir(name) / "config.yaml").read_text(encoding="utf-8")) or {}
        data = raw.get("data") or {}
        files = data.get("eval") or data.get("train") or [""]
        return str(files[0])

    def evaluate(
        self, name: str | None, checkpoint: str, data: str, variant: str, batch_size: int, max_new_tokens: int
    ) -> tuple[dict[str, float], list[list[Any]], str]:
        """Metrics, prediction rows and where the predictions were written."""
        out = None
        if name:
            out = self.runs.run_dir(name) / f"predictions-{Path(checkpoint).name}.jsonl"
        metrics, rows = after.evaluate(checkpoint, data, variant, batch_size, max_new_tokens, out)
        return metrics, rows, f"{len(rows)} predictions written to {out}" if out else f"{len(rows)} predictions"

    def export(self, checkpoint: str, out_dir: str, layout: str, dtype: str, force: bool) -> str:
        return after.export(checkpoint, out_dir, layout, dtype, force)
