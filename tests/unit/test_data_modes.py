"""Each data mode owns its settings: one validated dataclass per mode, read from a training config's data section
or from ``preprocess`` flags, with one-line errors naming the YAML key or the flag."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from glmtune.config import build_config
from glmtune.config.schema import DataConfig
from glmtune.data.render.modes import KINDS, all_modes, get_mode, modes_reading
from glmtune.errors import GlmtuneError


def test_every_mode_is_found_with_a_sound_settings_class() -> None:
    modes = all_modes()
    assert list(modes) == [
        "default",
        "chatglm3-multiturn",
        "chatglm3-input-output",
        "chatglm3-finetune-demo",
        "chatglm2-ptuning",
        "chatglm-ptuning",
    ]
    data_keys = {f.name for f in dataclasses.fields(DataConfig)}
    for mode in modes.values():
        mode.settings()  # every setting has a default
        for f in mode.fields():
            assert f.metadata["kind"] in KINDS, (mode.name, f.name)
            assert f.metadata["config"] in data_keys | {None}, (mode.name, f.name)


def test_config_values_and_their_fallbacks() -> None:
    d = DataConfig(train=["a"], max_length=1000)
    assert get_mode("chatglm3-multiturn").from_config(d).kwargs() == {"max_seq_length": 1000}
    assert get_mode("chatglm3-finetune-demo").from_config(d).kwargs() == {
        "max_input_length": 500,
        "max_output_length": 500,
    }
    d = DataConfig(train=["a"], max_source_length=7, ignore_pad_token_for_loss=False)
    s = get_mode("chatglm2-ptuning").from_config(d)
    assert (s.max_source_length, s.max_target_length, s.ignore_pad_token_for_loss) == (7, 1024, False)  # type: ignore[attr-defined]
    assert s.row_length() == 7 + 1024
    assert get_mode("default").from_config(DataConfig(train=["a"], mask_history=True)).kwargs() == {
        "max_length": 2048,
        "mask_history": True,
        "reasoning": "last",
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"mode": "chatglm3-finetune-demo", "max_input_length": "long"}, "data.max_input_length: expected a whole"),
        ({"mode": "chatglm3-multiturn", "max_length": 0}, "data.max_length: expected a whole number >= 1, got 0"),
        ({"mode": "chatglm2-ptuning", "ignore_pad_token_for_loss": "yes"}, "data.ignore_pad_token_for_loss: expected"),
        ({"reasoning": "some"}, "data.reasoning 'some': choose last, all or none"),
        ({"mode": "chatglm-ptuning", "mask_history": True}, "data.mask_history applies to the default mode"),
        ({"mode": "chatglm4-demo"}, "data.mode: unknown mode 'chatglm4-demo'; known: default, chatglm3-multiturn"),
    ],
)
def test_config_mistakes_name_the_key(data: dict, message: str) -> None:
    raw = {"model": {"path": "m"}, "data": {"train": ["a.json"], **data}}
    with pytest.raises(GlmtuneError, match=f"^cfg.yaml: {message}"):
        build_config(raw, source="cfg.yaml")


def test_preprocess_options_name_the_flag() -> None:
    mode = get_mode("chatglm3-multiturn")
    assert mode.from_options({"max_seq_length": None}).kwargs() == {"max_seq_length": 2048}
    with pytest.raises(GlmtuneError) as e:
        mode.from_options({"max_seq_length": -3})
    assert str(e.value) == "--max-seq-length: expected a whole number >= 1, got -3"
    with pytest.raises(GlmtuneError) as e:
        mode.from_options({"max_length": 5})
    assert str(e.value) == "mode chatglm3-multiturn has no setting --max-length (settings: --max-seq-length)"
    with pytest.raises(GlmtuneError) as e:
        get_mode("default").from_options({"max_seq_length": 5})
    assert str(e.value) == "mode default has no setting --max-seq-length (settings: --max-length)"


def test_ptuning_columns_are_inferred_from_the_data(tmp_path: Path) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text(json.dumps({"instruction": "q", "output": "a", "history": []}) + "\n", encoding="utf-8")
    s = get_mode("chatglm2-ptuning").from_options({"max_source_length": 8}, [data])
    assert (s.prompt_column, s.response_column, s.history_column) == ("instruction", "output", "history")  # type: ignore[attr-defined]
    given = get_mode("chatglm2-ptuning").from_options({}, [data], columns={"prompt": "q", "response": "a"})
    assert (given.prompt_column, given.response_column) == ("q", "a")  # type: ignore[attr-defined]
    with pytest.raises(GlmtuneError, match="applies to the default and ptuning modes only"):
        get_mode("chatglm3-multiturn").from_options({}, [data], columns={"prompt": "q"})


def test_the_board_writes_a_length_only_for_the_modes_reading_it() -> None:
    assert modes_reading("max_source_length") == ("chatglm3-input-output", "chatglm2-ptuning", "chatglm-ptuning")
    assert modes_reading("max_input_length") == ("chatglm3-finetune-demo",)
    assert modes_reading("mask_history") == ("default",)
    assert set(modes_reading("max_length")) == {"default", "chatglm3-multiturn"}
