"""The official ChatGLM3 finetune_demo command line and YAMLs run unchanged (DATA_DIR MODEL_DIR CONFIG [yes|N])."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    records = json.loads((REPO / "examples" / "chatglm3_conversations.json").read_text())
    plain = [r for r in records if "tools" not in r]  # the official demo refuses tools
    (d / "train.json").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in plain) + "\n")
    (d / "dev.json").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in plain[:4]) + "\n")
    return d


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lora", "ptuning_v2", "sft"])
def test_official_yaml_runs(name: str, data_dir: Path, tiny_factory, tmp_path: Path) -> None:
    ckpt = tiny_factory("chatglm3")
    raw = yaml.safe_load((REPO / "configs" / "finetune_demo" / f"{name}.yaml").read_text())
    raw["training_args"].update(
        output_dir=str(tmp_path / "output"),
        max_steps=4,
        save_steps=2,
        eval_steps=2,
        per_device_train_batch_size=4,
        per_device_eval_batch_size=4,
        logging_steps=1,
    )
    raw["training_args"]["generation_config"]["max_new_tokens"] = 8
    raw["max_input_length"], raw["max_output_length"] = 64, 64
    if name == "ptuning_v2":
        raw["peft_config"]["num_virtual_tokens"] = 8
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml.safe_dump(raw))
    cmd = [sys.executable, "-m", "glmtune.cli", "train", str(data_dir), str(ckpt), str(config)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = tmp_path / "output"
    assert (out / "checkpoint-4" / "trainer_state.json").is_file()
    state = json.loads((out / "trainer_state.json").read_text())
    assert any("eval_rouge-1" in e for e in state["log_history"]), "predict_with_generate metrics missing"
    assert any("eval_loss" in e for e in state["log_history"]), "no eval loss (P-Tuning: label names)"
    # the optional fourth argument resumes: 'yes' = the last checkpoint, a number = that checkpoint
    shutil.rmtree(out / "checkpoint-4")
    raw["training_args"]["max_steps"] = 6
    config.write_text(yaml.safe_dump(raw))
    again = subprocess.run([*cmd, "yes"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 6
