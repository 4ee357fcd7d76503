"""Train a LoR2C model with your own Hugging Face ``Trainer`` (a complete script: examples/train_with_trainer.py).

    model = get_lor2c_model(base, load_config("studies/<study>/best_config.yaml"))
    args = training_arguments("out", train=load_train_settings("studies/<study>/best_config.yaml"))
    trainer = Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tokenizer),
                      processing_class=tokenizer, callbacks=[LoR2CCallback(model, task="sst2")])
    trainer.train()
    model.save_pretrained("out/adapter"); write_run_meta("out/adapter", task="sst2")

``training_arguments`` gives ``TrainingArguments`` with autolor2c's training defaults (``TrainArgs``). The
callback runs the config's merges and injections at the same steps as `autolor2c train` (the paper's spacing
in the first quarter of training), hands each injection's new LoRA weights to the Trainer's optimizer and
learning-rate scheduler, and makes every Trainer checkpoint hold the adapter (``lor2c_config.json`` +
``lor2c_model.safetensors``, and with ``task`` ``autolor2c.json``, which `autolor2c predict` reads) instead of
the full model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import TrainerCallback, TrainingArguments
from transformers.utils import SAFE_WEIGHTS_NAME

from autolor2c.lor2c import CONFIG_NAME, WEIGHTS_NAME, LoR2CConfig, LoR2CModel, read_adapter_config
from autolor2c.train.adapters import META_NAME
from autolor2c.train.backbone import EMBEDDED_HUB_ID, resolve_model, set_backbone_dropout
from autolor2c.train.loop import TrainArgs, planned_steps, structure_schedule, training_args


def load_config(path: str | Path) -> LoR2CConfig:
    """The LoR2C config to start training from: a search's ``best_config.yaml`` or an ``export --format
    yaml/json`` file (its ``adapter`` section), or an adapter folder's ``lor2c_config.json`` (its trained
    structure, taken as it is: no further merges or injections)."""
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_NAME
    text = path.read_text()
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if isinstance(data, dict) and "lor2c" in data:  # an adapter folder's config: the structure it ended with
        return LoR2CConfig.from_dict({**data["lor2c"], "merge_count": 0, "inject_count": 0})
    if isinstance(data, dict) and data.get("method", "lor2c") == "lor2c" and isinstance(data.get("adapter"), dict):
        return LoR2CConfig.from_dict(data["adapter"])
    raise ValueError(f"{path}: not a LoR2C config (expected an 'adapter' section of method lor2c, or an adapter folder)")


def load_train_settings(path: str | Path) -> dict[str, Any]:
    """The ``train:`` section (autolor2c's training settings) of a ``best_config.yaml`` or an ``export
    --format yaml/json`` file; ``{}`` for an adapter folder or a file without one."""
    path = Path(path)
    if path.is_dir():
        return {}
    data = yaml.safe_load(path.read_text())  # JSON is YAML too
    train = data.get("train") if isinstance(data, dict) else None
    return dict(train) if isinstance(train, dict) else {}


def training_arguments(output_dir: str | Path, train: TrainArgs | Mapping[str, Any] | None = None,
                       train_rows: int | None = None, **overrides: Any) -> TrainingArguments:
    """``TrainingArguments`` that train as `autolor2c train` does: learning rate, batch size, warm-up ratio,
    weight decay, gradient clipping, epochs, seed and length-grouped batches from ``autolor2c.train.TrainArgs``
    (or ``train``: a ``TrainArgs``, or a config's ``train:`` section over the defaults). With ``train_rows``
    (the training set's size) the run also takes at least ``min_steps`` optimiser steps, as `autolor2c train`
    does on small tasks. ``overrides`` are ``TrainingArguments``' own names and win over all of these.

    The backbone's own dropout is a model setting, not an argument: ``set_backbone_dropout(base, 0.0)``
    before ``get_lor2c_model`` turns it off as `autolor2c train` does. Early stopping (``TrainArgs.patience``)
    is the Trainer's own: with it, the arguments evaluate and save every ``eval_every`` steps and load the best
    checkpoint at the end; pass ``EarlyStoppingCallback(early_stopping_patience=patience)`` and an eval set."""
    args = train if isinstance(train, TrainArgs) else training_args(dict(train or {}))
    kw: dict[str, Any] = dict(
        output_dir=str(output_dir), learning_rate=args.learning_rate, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size, warmup_steps=args.warmup_ratio, weight_decay=args.weight_decay,
        max_grad_norm=args.grad_clip, num_train_epochs=args.epochs, seed=args.seed, lr_scheduler_type="linear",
        train_sampling_strategy="group_by_length" if args.group_by_length else "random")
    steps = args.max_steps
    if train_rows is not None:  # the run length rule has one home: planned_steps
        steps = planned_steps(args, train_rows)
    if steps:
        kw["max_steps"] = steps
    if args.patience:  # transformers' EarlyStoppingCallback needs evaluations, saves and the best model kept
        every = args.eval_every or (max(1, steps // args.max_evals) if steps else 500)
        kw.update(eval_strategy="steps", eval_steps=every, save_strategy="steps", save_steps=every,
                  load_best_model_at_end=True)
    if args.precision == "bf16":  # the Trainer's own bf16 autocast (checked for native bf16 by TrainArgs)
        import torch

        kw["bf16"] = True
        if not torch.cuda.is_available():  # transformers refuses bf16 without a GPU unless told it is on the CPU
            kw["use_cpu"] = True
    kw.update(overrides)
    return TrainingArguments(**kw)


def run_meta(folder: str | Path, task: Any, max_length: int | None = None) -> dict[str, Any]:
    """The ``autolor2c.json`` (task, labels, base model) of a LoR2C folder saved by a Trainer checkpoint or
    ``model.save_pretrained``, from its ``lor2c_config.json`` and the ``task`` it was trained for (a GLUE
    name or a ``TaskSpec``)."""
    from autolor2c.tasks import get_task

    task = get_task(task) if isinstance(task, str) else task
    cfg = read_adapter_config(folder)
    base = cfg.get("base_model_name_or_path")
    if base == EMBEDDED_HUB_ID or (base and Path(base) == Path(resolve_model(None))):
        base = None  # the embedded model: loads offline
    return {"task": task.name, "task_spec": asdict(task) if task.is_custom else None, "model": base,
            "num_labels": cfg.get("num_labels") or task.num_labels,
            "max_length": max_length or TrainArgs.max_length, "seed": None, "primary_metric": task.primary_metric,
            "primary_score": None, "scores": {}, "trainable_params": cfg.get("adapter_params")}


def write_run_meta(folder: str | Path, task: Any, max_length: int | None = None) -> Path:
    """Write ``autolor2c.json`` into a LoR2C folder saved by ``model.save_pretrained`` or a Trainer
    checkpoint, so that `autolor2c predict` can use it (it needs the task and labels)."""
    path = Path(folder) / META_NAME
    path.write_text(json.dumps(run_meta(folder, task, max_length), indent=2, default=str))
    return path


class LoR2CCallback(TrainerCallback):
    """Merges and injections at the scheduled steps, new parameters into the Trainer's optimizer and
    scheduler, and the adapter (not the full model) in each checkpoint; with ``task`` (a GLUE name or a
    ``TaskSpec``) each checkpoint also gets ``autolor2c.json``, so `autolor2c predict` takes it as it is."""

    def __init__(self, model: LoR2CModel, structure_fraction: float = 0.25, keep_full_model: bool = False,
                 task: Any = None, max_length: int | None = None):
        if not isinstance(model, LoR2CModel):
            raise TypeError("LoR2CCallback needs the LoR2CModel the Trainer trains (from get_lor2c_model)")
        if isinstance(task, str):
            from autolor2c.tasks import get_task

            task = get_task(task)
        self.model = model
        self.task, self.max_length = task, max_length
        self.structure_fraction = structure_fraction
        self.keep_full_model = keep_full_model
        self.schedule: dict[int, list[str]] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        cfg = self.model.lor2c_config
        self.schedule = structure_schedule(state.max_steps, cfg.merge_count, cfg.inject_count, self.structure_fraction)

    def on_step_end(self, args, state, control, optimizer=None, lr_scheduler=None, **kwargs):
        ops = self.schedule.get(state.global_step, [])
        if not ops:
            return
        before = {id(p) for group in optimizer.param_groups for p in group["params"]} if optimizer else set()
        for op in ops:
            event = self.model.merge() if op == "merge" else self.model.inject()
            if event is not None:
                event["step"] = state.global_step
        new = [p for p in self.model.trainable_parameters() if id(p) not in before]
        if new and optimizer is not None:
            _add_to_optimizer(optimizer, lr_scheduler, new, args.weight_decay)

    def on_save(self, args, state, control, **kwargs):
        """The checkpoint the Trainer just wrote gets the adapter; its full-model weights go."""
        checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not checkpoint.is_dir() or not args.should_save:
            return
        with tempfile.TemporaryDirectory(dir=checkpoint) as tmp:
            folder = self.model.save_pretrained(Path(tmp) / "adapter")
            for name in (CONFIG_NAME, WEIGHTS_NAME):
                shutil.move(str(folder / name), str(checkpoint / name))
        if self.task is not None:
            write_run_meta(checkpoint, self.task, self.max_length)
        if not self.keep_full_model:
            (checkpoint / SAFE_WEIGHTS_NAME).unlink(missing_ok=True)


def _add_to_optimizer(optimizer: torch.optim.Optimizer, lr_scheduler: Any, params: list[torch.nn.Parameter],
                      weight_decay: float) -> None:
    """One new param group per kind (weights decay, biases do not), at the learning rate the scheduler
    gives the first group now, and registered with the scheduler so it follows the same schedule."""
    first = optimizer.param_groups[0]
    lr_scheduler = getattr(lr_scheduler, "scheduler", lr_scheduler)  # accelerate's wrapper holds the real one
    for group_params, decay in (([p for p in params if p.ndim >= 2], weight_decay),
                                ([p for p in params if p.ndim < 2], 0.0)):
        if not group_params:
            continue
        base_lr = first.get("initial_lr", first["lr"])
        optimizer.add_param_group({"params": group_params, "weight_decay": decay, "lr": first["lr"],
                                   "initial_lr": base_lr})
        if lr_scheduler is not None and hasattr(lr_scheduler, "base_lrs"):
            lr_scheduler.base_lrs.append(base_lr)
            if hasattr(lr_scheduler, "lr_lambdas"):  # LambdaLR: Trainer's linear / cosine / constant schedules
                lr_scheduler.lr_lambdas.append(lr_scheduler.lr_lambdas[0])
            if hasattr(lr_scheduler, "_last_lr"):
                lr_scheduler._last_lr.append(first["lr"])


__all__ = ["LoR2CCallback", "load_config", "load_train_settings", "run_meta", "set_backbone_dropout",
           "training_arguments", "write_run_meta"]
