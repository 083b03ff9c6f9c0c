"""Configs and records in the official shapes (GLM-4 finetune YAMLs, GLM-4 README messages), written by the tests.

The key names and values are those of the official files; the text is ours.
"""

from __future__ import annotations

import json


def glm4_lora_yaml(current: bool) -> dict:
    """The keys and values of the official GLM-4 LoRA config (``current``: finetune/, else the older finetune_demo/)."""
    training = {
        "output_dir": "./output",
        "max_steps": 3000,
        "learning_rate": 5e-4,
        "per_device_train_batch_size": 1,
        "dataloader_num_workers": 16,
        "remove_unused_columns": False,
        "save_strategy": "steps",
        "save_steps": 500,
        "log_level": "info",
        "logging_strategy": "steps",
        "logging_steps": 10,
        "per_device_eval_batch_size": 4,
        "eval_strategy": "steps",
        "eval_steps": 500,
        "predict_with_generate": True,
        "generation_config": {"max_new_tokens": 512},
    }
    raw = {
        "data_config": {"train_file": "train.jsonl", "val_file": "dev.jsonl", "test_file": "dev.jsonl", "num_proc": 1},
        "combine": True,
        "freezeV": True,
        "max_input_length": 512,
        "max_output_length": 512,
        "training_args": training,
        "peft_config": {
            "peft_type": "LORA",
            "task_type": "CAUSAL_LM",
            "r": 8,
            "lora_alpha": 32,
            "lora_dropout": 0.1,
            "target_modules": ["q_proj", "k_proj", "v_proj"] if current else ["query_key_value"],
        },
    }
    if current:
        training.update(run_name="glm4-lora-finetune", deepspeed="configs/ds_zero_2.json")
    return raw


def glm4_records() -> list[dict]:
    """Records in the GLM-4 README's shape: plain, multi-turn, and a tool call written as JSON content."""
    tool = {
        "type": "function",
        "function": {
            "name": "get_recommended_books",
            "description": "Get recommended books based on user's interests",
            "parameters": {
                "type": "object",
                "properties": {"interests": {"type": "array", "items": {"type": "string"}}},
                "required": ["interests"],
            },
        },
    }
    call = json.dumps({"name": "get_recommended_books", "arguments": {"interests": ["history"]}})
    return [
        {
            "messages": [
                {"role": "user", "content": "类型#裤*材质#牛仔布"},
                {"role": "assistant", "content": "一条牛仔裤。"},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "你好"},
                {"role": "assistant", "content": "你好！"},
                {"role": "user", "content": "你是谁"},
                {"role": "assistant", "content": "我是助手。"},
            ]
        },
        {
            "messages": [
                {"role": "system", "content": "", "tools": [tool]},
                {"role": "user", "content": "Recommend a book on history."},
                {"role": "assistant", "content": call},
                {"role": "observation", "content": '{"books": ["Sapiens"]}'},
                {"role": "assistant", "content": "Try Sapiens."},
            ]
        },
    ]
