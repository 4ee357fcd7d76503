"""Training a super-adapter once over many LoR2C structures (weight sharing), and scoring a structure inside it.

Each optimiser step trains one structure: the largest and the smallest in turn with structures drawn from a
prior (the sandwich rule of BigNAS, LoNAS and Shears), so every span, rank prefix and injected layer the prior
can place gets trained. A structure's one-shot score is its selection score with that structure switched on:
one evaluation, no training. The merges and injections a configuration asks for are decided as training
decides them, by the spectra, here of the shared weights, in the training schedule's order.
"""

from __future__ import annotations

import copy
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from autolor2c.errors import UserError
from autolor2c.lor2c import LoR2CConfig, can_merge, guaranteed_events
from autolor2c.lor2c.model import write_folder_atomically
from autolor2c.lor2c.super_adapter import SuperAdapter
from autolor2c.tasks import TaskSpec, get_task

from .backbone import load_backbone, load_tokenizer
from .loop import (Batches, TrainArgs, _make_optimizer, evaluate, optimizer_step, pick_device, planned_steps,
                   prepare_data, scheduled_lr, seed_everything, set_cpu_threads, structure_schedule)

WEIGHTS = "super_adapter.safetensors"
META = "super_adapter.json"


@dataclass(kw_only=True)
class SuperAdapterRun:
    """A trained super-adapter and the data it scores structures on."""

    model: SuperAdapter
    task: TaskSpec
    eval_rows: Batches            # the selection split (the dev set where there is none)
    device: torch.device
    steps: int
    wall_s: float
    cpu_s: float
    structure_fraction: float = 0.25
    precision: str = "fp32"       # as the top rung's runs: structures train and score alike
    losses: list[float] = field(default_factory=list)


def random_events(config: LoR2CConfig, num_layers: int, rng: random.Random) -> LoR2CConfig:
    """``config`` after its guaranteed merges and injections, each pair or bypass picked at random: the
    structures training will meet, without knowing which the spectra will pick."""
    cfg = _one_rank(config)
    merges, injects = guaranteed_events(cfg, num_layers)
    cfg.merge_count, cfg.inject_count = 0, 0
    for _ in range(merges):
        spans = cfg.resolved_spans(num_layers)
        cands = [n for n in range(len(spans) - 1) if can_merge(spans[n], spans[n + 1], cfg.max_merge_span)]
        n = rng.choice(cands)
        spans[n] = [spans[n][0], spans[n + 1][1]]
        del spans[n + 1]
        cfg.spans = spans
    for _ in range(injects):
        spans = cfg.resolved_spans(num_layers)
        cands = [n for n, (i, j) in enumerate(spans) if i == j and i not in cfg.injected]
        n = rng.choice(cands)
        cfg.injected = sorted(cfg.injected + [spans[n][0]])
        del spans[n]
        cfg.spans = spans
    return cfg


def _one_rank(config: LoR2CConfig) -> LoR2CConfig:
    """A copy with per-bypass ranks and alphas folded into one where merges or injections will move spans (they
    need one rank, ``LoR2CConfig.validate``; one alpha keeps the lists in step)."""
    cfg = copy.deepcopy(config)
    if cfg.merge_count or cfg.inject_count:
        if cfg.ranks is not None:
            cfg.rank, cfg.ranks = int(cfg.ranks[0]), None
        if cfg.alphas is not None:
            cfg.alpha, cfg.alphas = float(cfg.alphas[0]), None
    return cfg


def final_structure(model: SuperAdapter, config: LoR2CConfig, num_layers: int) -> LoR2CConfig:
    """``config`` after its guaranteed merges and injections, in the training schedule's order, each picked by
    the super-adapter's spectra (as ``LoR2CModel.merge`` / ``inject`` pick by the trained weights)."""
    cfg = _one_rank(config)
    merges, injects = guaranteed_events(cfg, num_layers)
    cfg.merge_count, cfg.inject_count = 0, 0
    schedule = structure_schedule(1000, merges, injects)
    for step in sorted(schedule):
        for op in schedule[step]:
            nxt = model.merged(cfg) if op == "merge" else model.injected(cfg)
            if nxt is None:  # cannot happen for guaranteed events; the structure stays as it is
                continue
            cfg = nxt
    return cfg


def _device_and_rows(task: TaskSpec, args: TrainArgs, model_name: str | None, data_dir: str | None):
    """The device (CPU threads set), the training rows and the rows structures are scored on (the selection
    split, else the dev set)."""
    device = pick_device(args.device)
    if device.type == "cpu":
        set_cpu_threads()
    tokenizer = load_tokenizer(model_name)
    encoded = prepare_data(task, tokenizer, args, data_dir)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_rows = Batches(encoded["train"], pad_id, task.is_regression)
    eval_rows = Batches(encoded["selection"] if "selection" in encoded else encoded["validation"], pad_id,
                        task.is_regression)
    return device, train_rows, eval_rows


def train_super_adapter(task: str | TaskSpec, draw: Callable[[random.Random], LoR2CConfig],
                        extremes: Sequence[LoR2CConfig], args: TrainArgs, *, max_span: int, max_rank: int,
                        max_lora_rank: int, inject_targets: list[str] | None = None, model_name: str | None = None,
                        data_dir: str | None = None, steps: int | None = None) -> SuperAdapterRun:
    """Train a super-adapter for ``steps`` optimiser steps (default: the run ``args`` describes). Step k trains
    ``extremes[k % 4]`` for k % 4 < len(extremes) (the largest and the smallest structures), else a structure
    from ``draw(rng)`` with its merges and injections done at random (``random_events``)."""
    args = copy.deepcopy(args).validate()
    task = get_task(task) if isinstance(task, str) else task
    wall0, cpu0 = time.perf_counter(), time.process_time()
    device, train_rows, eval_rows = _device_and_rows(task, args, model_name, data_dir)
    seed_everything(args.seed)
    base = load_backbone(model_name, task.num_labels, task.is_regression, seed=args.seed, dropout=args.backbone_dropout)
    model = SuperAdapter(base, max_span=max_span, max_rank=max_rank, max_lora_rank=max_lora_rank,
                         inject_targets=inject_targets).to(device)
    model.train()
    num_layers = model.shape.num_layers
    total = steps or planned_steps(args, len(train_rows))
    warmup = int(total * args.warmup_ratio)
    opt = _make_optimizer(model, args.learning_rate, args.weight_decay)
    rng = random.Random(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    step, losses = 0, []
    progress = None
    if args.progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=total, desc=f"super-adapter {task.name}", unit="step", leave=False, dynamic_ncols=True)
    while step < total:
        for idx in train_rows.order(args.batch_size, gen, args.group_by_length):
            if step >= total:
                break
            k = step % 4
            cfg = extremes[k] if k < len(extremes) else random_events(draw(rng), num_layers, rng)
            model.activate(cfg)
            loss = optimizer_step(model, train_rows.collate(idx, device), opt, model.active_parameters(), args,
                                  device, scheduled_lr(args.learning_rate, step, total, warmup), step)
            losses.append(loss.item())
            step += 1
            if progress is not None:
                progress.update(1)
    if progress is not None:
        progress.close()
    model.eval()
    return SuperAdapterRun(model=model, task=task, eval_rows=eval_rows, device=device, steps=step,
                           wall_s=round(time.perf_counter() - wall0, 3), cpu_s=round(time.process_time() - cpu0, 3),
                           structure_fraction=args.structure_fraction, precision=args.precision, losses=losses)


def score_structure(run: SuperAdapterRun, config: LoR2CConfig) -> dict[str, Any]:
    """The one-shot score of ``config``: its final structure (merges and injections decided by the shared
    weights' spectra) switched on inside the super-adapter, scored on the selection split."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    model = run.model
    final = final_structure(model, config, model.shape.num_layers)
    model.activate(final)
    scores = evaluate(model, run.task, run.eval_rows, run.device, run.precision)
    return {"score": scores[run.task.primary_metric], "scores": scores,
            "final_structure": {"spans": final.resolved_spans(model.shape.num_layers), "injected": final.injected,
                                "rank": final.rank, "share_a": final.share_a},
            "wall_s": round(time.perf_counter() - wall0, 3), "cpu_s": round(time.process_time() - cpu0, 3)}


def _own_tensors(model: SuperAdapter) -> dict[str, torch.Tensor]:
    """What a super-adapter trained: its bypasses and LoRA, and the head (``head.<module>.<param>``)."""
    out = {k: p for k, p in model.named_parameters() if not k.startswith("base_model.")}
    out.update({f"head.{n}.{pn}": p for n in model.head_modules
                for pn, p in model.base_model.get_submodule(n).named_parameters()})
    return out


def save_super_adapter(run: SuperAdapterRun, folder: str | Path, meta: dict[str, Any]) -> Path:
    """The trained weights (safetensors) and ``meta`` (what they were trained on, for a cache key)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in _own_tensors(run.model).items()}
    info = {**meta, "super_adapter": run.model.describe(), "steps": run.steps, "wall_s": run.wall_s,
            "cpu_s": run.cpu_s, "final_loss": float(np.mean(run.losses[-50:])) if run.losses else None}

    def write(tmp: Path) -> None:
        save_file(tensors, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / META).write_text(json.dumps(info, indent=2, default=str))

    return write_folder_atomically(folder, write)


def read_super_adapter_meta(folder: str | Path) -> dict[str, Any] | None:
    f = Path(folder) / META
    if not f.is_file() or not (Path(folder) / WEIGHTS).is_file():
        return None
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError:
        return None


def load_super_adapter(folder: str | Path, task: str | TaskSpec, args: TrainArgs, *, model_name: str | None = None,
                       data_dir: str | None = None) -> SuperAdapterRun:
    """A saved super-adapter on a fresh backbone, ready to score structures (weights read with safetensors)."""
    from safetensors.torch import load_file

    task = get_task(task) if isinstance(task, str) else task
    meta = read_super_adapter_meta(folder)
    if meta is None:
        raise UserError(f"{folder}: not a super-adapter folder (needs {WEIGHTS} and {META})")
    device, _, eval_rows = _device_and_rows(task, args, model_name, data_dir)
    d = meta["super_adapter"]
    base = load_backbone(model_name, task.num_labels, task.is_regression, seed=args.seed, dropout=args.backbone_dropout)
    model = SuperAdapter(base, max_span=d["max_span"], max_rank=d["max_rank"], max_lora_rank=d["max_lora_rank"],
                         inject_targets=d["inject_targets"]).to(device)
    tensors = load_file(str(Path(folder) / WEIGHTS))
    own = _own_tensors(model)
    if set(tensors) != set(own) or any(tuple(tensors[k].shape) != tuple(p.shape) for k, p in own.items()):
        raise UserError(f"{folder}: the saved super-adapter does not match its description")
    with torch.no_grad():
        for k, p in own.items():
            p.copy_(tensors[k].to(p.dtype))
    model.eval()
    return SuperAdapterRun(model=model, task=task, eval_rows=eval_rows, device=device, steps=int(meta["steps"]),
                           wall_s=float(meta["wall_s"]), cpu_s=float(meta["cpu_s"]),
                           structure_fraction=args.structure_fraction, precision=args.precision)
