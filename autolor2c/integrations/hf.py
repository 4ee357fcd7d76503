"""Train a LoR2C model with your own Hugging Face ``Trainer``.

    model = get_lor2c_model(base, load_config("best/config.yaml"))
    trainer = Trainer(model=model, args=TrainingArguments("out"), train_dataset=ds,
                      callbacks=[LoR2CCallback(model)])
    trainer.train()
    model.save_pretrained("out/adapter")

The callback runs the config's merges and injections at the same steps as `autolor2c train` (the
paper's spacing in the first quarter of training), hands each injection's new LoRA weights to the
Trainer's optimizer and learning-rate scheduler, and makes every Trainer checkpoint hold the adapter
(``lor2c_config.json`` + ``lor2c_model.safetensors``) instead of the full model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml
from transformers import TrainerCallback
from transformers.utils import SAFE_WEIGHTS_NAME

from autolor2c.lor2c import CONFIG_NAME, WEIGHTS_NAME, LoR2CConfig, LoR2CModel
from autolor2c.train.loop import structure_schedule


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


class LoR2CCallback(TrainerCallback):
    """Merges and injections at the scheduled steps, new parameters into the Trainer's optimizer and
    scheduler, and the adapter (not the full model) in each checkpoint."""

    def __init__(self, model: LoR2CModel, structure_fraction: float = 0.25, keep_full_model: bool = False):
        if not isinstance(model, LoR2CModel):
            raise TypeError("LoR2CCallback needs the LoR2CModel the Trainer trains (from get_lor2c_model)")
        self.model = model
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


__all__ = ["LoR2CCallback", "load_config"]
