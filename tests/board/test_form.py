"""The configure form: every shipped YAML loads into it and comes back the same; bad input is named by field."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glmtune.board.checks import check_form
from glmtune.board.form import BY_KEY, FIELDS, config_from_form, defaults, find_configs, form_from_config, to_yaml
from glmtune.config import build_config, load_config
from glmtune.config.load import read_yaml
from tests.board.conftest import DATA, REPO, run_values

CONFIGS = find_configs([REPO / "configs"])


def _same(a: Any, b: Any) -> None:
    for section in ("model", "data", "method"):
        assert dataclasses.asdict(getattr(a, section)) == dataclasses.asdict(getattr(b, section)), section
    assert a.training.to_dict() == b.training.to_dict()
    assert a.generation == b.generation


def test_every_config_is_offered() -> None:
    shipped = {p for p in (REPO / "configs").rglob("*.yaml") if p.parent.name not in ("finetune_demo", "deepspeed")}
    assert {Path(p) for p in CONFIGS} == shipped  # official and accelerate YAMLs are not glmtune sections


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(Path(p).relative_to(REPO / "configs")))
def test_config_round_trips_through_the_form(path: str) -> None:
    from glmtune.board.form import load_yaml_form

    values = load_yaml_form(path)
    raw = config_from_form(values)
    _same(build_config(raw, source="form"), load_config(path))
    assert read_yaml_text(to_yaml(raw)) == raw


def read_yaml_text(text: str) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(text)


def test_defaults_make_a_valid_config(tiny: Path) -> None:
    checked = check_form(run_values(tiny), "ok")
    assert checked.ok, checked.errors
    assert "ChatGLM3" in checked.notes["model.path"] and "original THUDM layout" in checked.notes["model.path"]
    assert checked.notes["data.train"].endswith("chatglm3, 40 records") or "chatglm3" in checked.notes["data.train"]


def _errors(tiny: Path, **changes: Any) -> dict[str, str]:
    return check_form(run_values(tiny, **changes), "run").errors


def test_bad_input_is_named_by_its_field(tiny: Path, tmp_path: Path) -> None:
    assert "no such directory" in _errors(tiny, **{"model.path": str(tmp_path / "nowhere")})["model.path"]
    assert "config.json" in _errors(tiny, **{"model.path": str(tmp_path)})["model.path"]
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"conversations": []}\n{"conversations": [\n', encoding="utf-8")
    assert "broken.jsonl:2" in _errors(tiny, **{"data.train": str(broken)})["data.train"]
    odd = tmp_path / "odd.json"
    odd.write_text('[{"question": "q", "answer": "a"}]', encoding="utf-8")
    message = _errors(tiny, **{"data.train": str(odd)})["data.train"]
    assert "cannot tell the data format" in message and "question" in message
    mapped = {"data.train": str(odd), "data.format": "prompt-response"}
    assert check_form(
        run_values(tiny, **mapped, **{"data.columns": '{"prompt": "question", "response": "answer"}'}), "r"
    ).ok  # the column mapping makes it usable
    assert "invalid JSON" in _errors(tiny, **{"data.columns": "{prompt"})["data.columns"]
    assert "at least" in _errors(tiny, **{"training.learning_rate": -1})["training.learning_rate"]
    assert "whole number" in _errors(tiny, **{"training.max_steps": 2.5})["training.max_steps"]
    assert "invalid YAML" in _errors(tiny, other="training: [")["other"]
    assert "unknown section" in _errors(tiny, other="trainer: {a: 1}")["other"]
    assert "unknown option" in _errors(tiny, other="training: {learnin_rate: 1}")["other"]
    both = _errors(tiny, **{"training.fp16": True, "training.bf16": True})  # a TrainingArguments check
    assert both["training"].startswith("section training:")
    assert "run name" in check_form(run_values(tiny), "../escape").errors["run.name"]
    assert str(DATA.name) in check_form(run_values(tiny), "r").notes["data.train"]


def test_method_and_mode_settings_are_written_only_when_they_apply() -> None:
    values = defaults() | {"model.path": "m", "data.train": "d.json", "method.name": "ptuning-v2"}
    raw = config_from_form(values)
    assert "lora_r" not in raw["method"] and raw["method"]["pre_seq_len"] == 128
    raw = config_from_form(values | {"method.name": "qlora", "data.mode": "chatglm3-input-output"})
    assert raw["model"]["quantization_bit"] == 4 and raw["method"]["lora_r"] == 8
    assert "pack" not in raw["data"] and "max_source_length" not in raw["data"]  # blank: the mode's default
    raw = config_from_form(values | {"training.max_steps": -1, "training.num_train_epochs": 2})
    assert raw["training"]["num_train_epochs"] == 2


_value = {
    "int": st.integers(min_value=1, max_value=10_000),
    "float": st.floats(min_value=1e-6, max_value=1e3, allow_nan=False),
    "bool": st.booleans(),
    "text": st.from_regex(r"[a-z0-9/_.-]{1,20}", fullmatch=True),
    "paths": st.lists(st.from_regex(r"[a-z0-9_]{1,8}\.json", fullmatch=True), min_size=1, max_size=3).map("\n".join),
    "names": st.lists(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), min_size=1, max_size=3).map(", ".join),
    "json": st.just('{"prompt": "q"}'),
}


@st.composite
def form_values(draw: Any) -> dict[str, Any]:
    values = defaults()
    for f in FIELDS:
        if f.kind == "choice":
            values[f.key] = draw(st.sampled_from(f.choices))
        elif draw(st.booleans()):
            values[f.key] = draw(_value[f.kind])
    values["training.eval_strategy"] = draw(st.sampled_from(["no", "steps"]))
    return values


@settings(max_examples=60, deadline=None)
@given(form_values())
def test_form_config_form_is_stable(values: dict[str, Any]) -> None:
    raw = config_from_form(values)
    again = config_from_form(form_from_config(read_yaml_text(to_yaml(raw))))
    assert again == raw


def test_field_ids_are_unique() -> None:
    assert len({f.elem_id for f in FIELDS}) == len(FIELDS) == len(BY_KEY)


def test_yaml_file_errors(tmp_path: Path) -> None:
    from glmtune.board.form import load_yaml_form
    from glmtune.errors import GlmtuneError

    with pytest.raises(GlmtuneError, match="finetune_demo"):
        load_yaml_form(REPO / "configs" / "finetune_demo" / "lora.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {path: [\n", encoding="utf-8")
    with pytest.raises(GlmtuneError, match=r"bad.yaml:\d+: invalid YAML"):
        load_yaml_form(bad)
    assert read_yaml(REPO / "configs" / "chatglm3" / "lora.yaml")  # the reader the form uses
