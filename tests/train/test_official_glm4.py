"""The official GLM-4 finetune command line and YAMLs run unchanged: ``glmtune train DATA_DIR MODEL_DIR lora.yaml``.

The YAMLs carry every key of the official ``finetune/configs/lora.yaml`` (and of the older
``finetune_demo/configs/lora.yaml``); the data is the GLM-4 README's ``messages`` shape in ``train.jsonl``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.official_shapes import glm4_lora_yaml, glm4_records

REPO = Path(__file__).resolve().parents[2]


def write_data_dir(root: Path) -> Path:
    d = root / "data"
    d.mkdir()
    lines = [json.dumps(r, ensure_ascii=False) for r in glm4_records()]
    (d / "train.jsonl").write_text("\n".join(lines * 2) + "\n", encoding="utf-8")
    (d / "dev.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


@pytest.mark.slow
def test_official_glm4_yaml_runs(tiny_factory, tmp_path: Path) -> None:
    """The current finetune/configs/lora.yaml (the older one's keys are a subset: tests/unit/test_user_forms.py)."""
    ckpt = tiny_factory("glm4")
    write_data_dir(tmp_path)
    raw = glm4_lora_yaml(current=True)
    # only what makes it a seconds-long run on a tiny model: fewer steps, no 16 loader processes, short generation
    raw["training_args"].update(
        max_steps=2, save_steps=2, eval_steps=2, logging_steps=1, dataloader_num_workers=0, output_dir="./output"
    )
    raw["training_args"]["generation_config"]["max_new_tokens"] = 4
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "lora.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
    (tmp_path / "configs" / "ds_zero_2.json").write_text('{"zero_optimization": {"stage": 2}}')
    cmd = [sys.executable, "-m", "glmtune.cli", "train", "data", str(ckpt), "configs/lora.yaml"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, env=_env())
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "note: freezeV" in proc.stderr  # the key is accepted, and said not to apply to a text model
    assert "note: training_args.deepspeed" in proc.stderr  # no GPU here
    out = tmp_path / "output"
    assert (out / "checkpoint-2" / "adapter_model.safetensors").is_file()
    record = json.loads((out / "checkpoint-2" / "glmtune_adapter.json").read_text())
    assert record["family"] == "glm4" and record["base"] == str(ckpt.resolve())
    config = json.loads((out / "glmtune_config.json").read_text())
    assert config["data"]["mask_history"] is True  # combine: true = the conversation is one sample, last reply learned
    state = json.loads((out / "trainer_state.json").read_text())
    assert any("eval_loss" in e for e in state["log_history"])
    # the official script's final trainer.predict(test) printed and kept nothing: here it is said and saved
    assert "test_loss" in json.loads((out / "test_results.json").read_text())
    rows = [json.loads(x) for x in (out / "test_predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and {"prediction", "reference"} <= set(rows[0])
    assert "test: 3 predictions" in proc.stderr and "train: 6 samples from 6 records" in proc.stderr


def _env() -> dict:
    import os

    return {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
