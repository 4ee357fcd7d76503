"""Train a searched LoR2C configuration with your own Hugging Face Trainer, as `autolor2c train` trains it.

    python examples/train_with_trainer.py --config studies/<study>/best_config.yaml --task sst2 \
        --data-dir ../shared/data/glue --out runs/trainer-sst2

It tokenises the task's rows (padded per batch by DataCollatorWithPadding), attaches the configuration to
the base model with the backbone's dropout off, trains with autolor2c's training defaults as
TrainingArguments (and the config's own `train:` settings), scores the dev set, and saves an adapter folder
that `autolor2c predict --adapter OUT/adapter` reads (every checkpoint folder works the same way).
``--config`` takes a study's best_config.yaml, an `export --format yaml|json` file or an adapter folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer

from autolor2c.integrations.hf import (LoR2CCallback, load_config, load_train_settings, set_backbone_dropout,
                                       training_arguments, write_run_meta)
from autolor2c.lor2c import get_lor2c_model
from autolor2c.tasks import compute_metrics, get_task, load_task_data
from autolor2c.train import resolve_model, training_args


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description="Train a LoR2C configuration with a transformers Trainer")
    p.add_argument("--config", required=True, help="best_config.yaml, an export --format yaml/json file, or an adapter folder")
    p.add_argument("--task", default="sst2", help="GLUE task (default sst2)")
    p.add_argument("--model", default=None, help="hub id or folder (default: the embedded all-MiniLM-L6-v2)")
    p.add_argument("--data-dir", default=None, help="GLUE folder (default $AUTOLOR2C_DATA_DIR, else the hub)")
    p.add_argument("--out", default="runs/trainer", help="output folder: checkpoints, adapter/, metrics.json")
    p.add_argument("--max-train-samples", type=int, default=None, help="training rows (default: all)")
    p.add_argument("--max-eval-samples", type=int, default=None, help="dev rows (default: all)")
    p.add_argument("--max-steps", type=int, default=None, help="optimiser steps (default: as autolor2c train)")
    a = p.parse_args(argv)

    task = get_task(a.task)
    base_id = resolve_model(a.model)  # a hub id or a folder; None: the embedded model's folder
    settings = training_args(load_train_settings(a.config))  # TrainArgs: the defaults, then the config's train:
    tokenizer = AutoTokenizer.from_pretrained(base_id)
    data = load_task_data(task, data_dir=a.data_dir, max_train_samples=a.max_train_samples,
                          max_eval_samples=a.max_eval_samples)
    data = data.map(lambda rows: tokenizer(*(rows[c] for c in task.text_columns), truncation=True,
                                           max_length=settings.max_length),
                    batched=True, remove_columns=list(task.text_columns))

    base = AutoModelForSequenceClassification.from_pretrained(
        base_id, num_labels=task.num_labels,
        problem_type="regression" if task.is_regression else "single_label_classification")
    set_backbone_dropout(base, 0.0)  # as autolor2c train: the frozen backbone's own dropout off
    model = get_lor2c_model(base, load_config(a.config))

    args = training_arguments(a.out, train=settings, train_rows=len(data["train"]),
                              **({"max_steps": a.max_steps} if a.max_steps else {}))
    trainer = Trainer(model=model, args=args, train_dataset=data["train"], eval_dataset=data["validation"],
                      data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
                      compute_metrics=lambda p: compute_metrics(task, p.predictions, p.label_ids),
                      callbacks=[LoR2CCallback(model, task=task, max_length=settings.max_length)])
    trainer.train()
    scores = trainer.evaluate()

    adapter = model.save_pretrained(Path(a.out) / "adapter")
    write_run_meta(adapter, task, settings.max_length)  # task and labels: `autolor2c predict` reads the folder
    result = {"task": task.name, "dev": {k.removeprefix("eval_"): v for k, v in scores.items()},
              "steps": trainer.state.global_step, "adapter_params": model.num_adapter_params(),
              "adapter": str(adapter)}
    (Path(a.out) / "metrics.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))
    print(f"predict with: autolor2c predict --adapter {adapter} --input texts.csv")
    return result


if __name__ == "__main__":
    main()
