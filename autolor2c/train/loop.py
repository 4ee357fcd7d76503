"""One training loop, top to bottom: data, adapter, AdamW with warm-up/decay, the merge/inject schedule,
evaluation, the best state, metrics.json. No callbacks, no Trainer."""

from __future__ import annotations

import json
import math
import os
import random
import time
import dataclasses
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from autolor2c.errors import UserError
from autolor2c import precision as _precision
from autolor2c.lor2c import LoR2CModel, guaranteed_events
from autolor2c.tasks import TaskSpec, compute_metrics, encode_task, get_task, load_task_data, resolve_data_dir

from .adapters import (
    AdapterSpec,
    adalora_schedule,
    adapter_param_count,
    adapter_structure,
    attach,
    count_adapter_params,
    model_shape,
    save_adapter,
)
from .backbone import load_backbone, load_tokenizer, model_label


# Bump when a default changes what the same configuration trains to (2: trained pooler head, backbone
# dropout off; 3: a minimum number of steps, selection split; 4: a trial's top rung is the full run, low
# rungs evaluate once; 5: at least 1,200 steps; 6: at least 2,400 steps), so a study begun under the old
# defaults is not silently continued under the new ones.
TRAINER_VERSION = 6


class TrainingError(RuntimeError):
    """A run that cannot go on (NaN loss, out of memory); the search records it as a failed trial.
    Not a UserError: the input was valid, so the CLI must not answer it as bad input (exit 2)."""


@dataclass
class TrainArgs:
    """Every training setting of one run, with the library's defaults (sized for a 2-core CPU): the one
    home of those defaults. ``training_args`` builds one from settings and a plan's training keys;
    ``validate`` checks each value and names the bad one."""

    epochs: float = 1.0
    learning_rate: float = 2e-3
    batch_size: int = 32
    max_length: int = 128
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    max_steps: int | None = None          # caps the run (a low-fidelity rung)
    # The run length rule: one epoch, but at least this many optimiser steps, repeating a small set's data
    # (LoRA recipes use 10-80 epochs on GLUE's small tasks). At 1,200 MRPC still gained 3.3 points from
    # doubling at 3 seeds (STS-B lost 1.3), so 2,400 is the next candidate; its own double is measured in
    # bench/quality/run_length.py. The selection split cannot stop a run at the right point instead
    # (learning_curve.py).
    min_steps: int = 2400
    # A fixed part of the training rows held out to choose things on (trials, the best checkpoint);
    # 0 = none, then the dev set is used as before. The dev set is still scored at the end (dev_scores).
    selection_fraction: float = 0.0
    selection_cap: int | None = 2000
    score_dev: bool = True                # with a selection split: also score the dev set at the end
    # With a selection split: also score the dev set at every evaluation (evals' "dev_<metric>"), a learning
    # curve on dev that chooses nothing (the checkpoint is still chosen on the selection split).
    dev_curve: bool = False
    # Early stopping on the selection split (as transformers' EarlyStoppingCallback): stop once this many
    # evaluations in a row have not beaten the best since the last structure change, never before the last
    # scheduled merge/injection; the schedule stays the planned run's. None: run the planned length.
    patience: int | None = None
    eval_every: int | None = None         # steps between evaluations; None = each epoch end
    # Each epoch end, but at most this many evenly spaced ones when min_steps repeats a small set; a
    # search's low rung evaluates once, at its end (the fixed cost of a trial is mostly evaluation).
    max_evals: int = 3
    structure_fraction: float = 0.25      # merges/injections happen in this first part of training
    group_by_length: bool = True          # batches of similar length: less padding, same data
    backbone_dropout: float | None = 0.0  # the frozen model's own dropout; None keeps the model's rates
    seed: int = 0
    data_seed: int = 0                    # the training subset is the same for every seed
    device: str = "auto"
    # fp32, or bf16 autocast on a CPU with native bf16 (refused elsewhere: emulated bf16 is slower). A CUDA
    # device autocasts to bf16 where it can, whatever this says.
    precision: str = "fp32"
    progress: bool = True

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainArgs":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"unknown training setting(s): {', '.join(unknown)}")
        return cls(**d)

    def validate(self) -> "TrainArgs":
        checks = [("epochs", self.epochs > 0), ("learning_rate", 0 < self.learning_rate < 1),
                  ("batch_size", self.batch_size >= 1), ("max_length", 8 <= self.max_length <= 8192),
                  ("warmup_ratio", 0 <= self.warmup_ratio < 1), ("weight_decay", self.weight_decay >= 0),
                  ("max_train_samples", self.max_train_samples is None or self.max_train_samples >= 1),
                  ("max_eval_samples", self.max_eval_samples is None or self.max_eval_samples >= 1),
                  ("max_steps", self.max_steps is None or self.max_steps >= 1),
                  ("min_steps", self.min_steps >= 0),
                  ("selection_fraction", 0 <= self.selection_fraction < 1),
                  ("selection_cap", self.selection_cap is None or self.selection_cap >= 1),
                  ("eval_every", self.eval_every is None or self.eval_every >= 1),
                  ("max_evals", isinstance(self.max_evals, int) and self.max_evals >= 1),
                  ("patience", self.patience is None or (isinstance(self.patience, int) and self.patience >= 1)),
                  ("structure_fraction", 0 < self.structure_fraction <= 1),
                  ("backbone_dropout", self.backbone_dropout is None or 0 <= self.backbone_dropout < 1)]
        for name, ok in checks:
            if not ok:
                raise UserError("out of range for a training run", param=name, value=getattr(self, name))
        if self.precision not in _precision.PRECISIONS:
            raise UserError(f"choose one of {', '.join(_precision.PRECISIONS)}", param="precision", value=self.precision)
        if self.precision == "bf16" and pick_device(self.device).type == "cpu" and not _precision.cpu_has_bf16():
            raise UserError(f"this CPU has no native bf16 ({' or '.join(_precision.BF16_FLAGS)}): bf16 would be "
                            "emulated, slower than fp32", param="precision", value=self.precision)
        return self


@dataclass(kw_only=True)
class TrainResult:
    """What one ``train()`` run made: the adapted model and its record (``to_dict()`` is metrics.json)."""

    task: str
    method: str                              # "lor2c" or "lora"
    model: str                               # the backbone's label (the hub id's last part, or a folder name)
    config: dict[str, Any]                   # the adapter spec trained
    final_structure: dict[str, Any]          # after merges and injections
    train_args: dict[str, Any]
    scores: dict[str, float] | None          # of the best evaluation, on eval_split
    eval_split: str                          # "selection" (held-out training rows) or "validation" (dev)
    dev_scores: dict[str, float] | None = None
    dev_score: float | None = None
    primary_metric: str
    primary_score: float
    best_step: int | None = None
    trainable_params: int                    # the adapter's, as trained (head excluded)
    analytic_params: int                     # the same, counted from the final structure
    planned_params: dict[str, int]           # counted before training: initial, peak, final
    head_params: int
    backbone_params: int
    steps: int
    epochs: float
    n_train: int
    n_eval: int
    n_dev: int
    wall_time_s: float
    cpu_time_s: float
    gpu_time_s: float = 0.0
    device: str = "cpu"
    threads: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)   # merges and injections, with their scores
    spectra: list[dict[str, Any]] = field(default_factory=list)   # bypass scores at each structure step
    evals: list[dict[str, Any]] = field(default_factory=list)
    adapted_model: Any = field(default=None, repr=False, compare=False)  # LoR2CModel or PeftModel, best state

    def to_dict(self) -> dict[str, Any]:
        """The record without the model (metrics.json, trial attributes)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "adapted_model"}


def training_args(plan_train: Mapping[str, Any] | None = None, *, fraction: float = 1.0, **settings: Any) -> TrainArgs:
    """The one way a run's training arguments are made, for search trials, retrains, baselines and
    ``autolor2c train`` alike: the library defaults (``TrainArgs``), then the run's ``settings`` (``None``
    means "the default"), then the plan's own training keys (from the space or a config file).

    ``fraction`` < 1 makes a low-fidelity rung of that run: that share of its optimiser steps, on the same
    rows (``max_train_samples``: the full run's). A share of the rows as well would repeat a small set as
    many times as the full run repeats the whole one: MRPC's 2,400-step run is 23 epochs, and 23 epochs on a
    ninth of its rows scored every configuration below the input-blind score (bench/quality/rung_rows.py).
    """
    kw = {k: v for k, v in settings.items() if v is not None}
    kw.update(plan_train or {})
    args = TrainArgs.from_dict(kw)
    if fraction < 1:
        if args.max_train_samples is None:
            raise ValueError("a fractional rung needs max_train_samples (the full trial's rows)")
        args.min_steps = args.max_steps = max(1, math.ceil(planned_steps(args, args.max_train_samples) * fraction))
    return args.validate()


def planned_steps(args: TrainArgs, n_train: int) -> int:
    """Optimiser steps of a run on ``n_train`` rows: its epochs, at least ``min_steps``, at most ``max_steps``."""
    total = max(1, math.ceil(math.ceil(n_train / args.batch_size) * args.epochs), args.min_steps)
    return min(total, args.max_steps) if args.max_steps else total


def structure_schedule(total_steps: int, merges: int, injects: int, fraction: float = 0.25) -> dict[int, list[str]]:
    """Steps at which to merge / inject: the paper spaces its M merges every int(E/4/M)+1 epochs (and
    injections likewise), all in about the first quarter; we do the same in optimiser steps, so the
    schedule keeps its meaning for runs of any length (a one-epoch rung included)."""
    window = max(1.0, total_steps * fraction)
    plan: dict[int, list[str]] = {}
    for op, count in (("merge", merges), ("inject", injects)):
        if count <= 0:
            continue
        interval = max(1, int(window / count))
        for k in range(1, count + 1):
            plan.setdefault(min(k * interval, total_steps), []).append(op)
    return plan


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"bad device {name!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for but no CUDA device is present")
    return dev


def set_cpu_threads() -> int:
    """Use every core we are allowed on, unless the user pinned OMP_NUM_THREADS."""
    if "OMP_NUM_THREADS" not in os.environ:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, n))
    return torch.get_num_threads()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------------
# Batching with dynamic padding
# --------------------------------------------------------------------------------------------------
class Batches:
    """Pre-tokenised rows as Python lists; padded per batch to that batch's longest row."""

    def __init__(self, encoded, pad_id: int, is_regression: bool):
        self.cols = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in encoded.column_names]
        self.data = {c: encoded[c] for c in self.cols}
        self.labels = encoded["labels"]
        self.lengths = [len(x) for x in self.data["input_ids"]]
        self.pad_id = pad_id
        self.label_dtype = torch.float32 if is_regression else torch.long

    def __len__(self) -> int:
        return len(self.labels)

    def order(self, batch_size: int, gen: torch.Generator | None, group_by_length: bool) -> list[list[int]]:
        n = len(self)
        if gen is None:  # evaluation: sorted by length, fastest
            idx = sorted(range(n), key=lambda i: self.lengths[i])
            return [idx[i:i + batch_size] for i in range(0, n, batch_size)]
        perm = torch.randperm(n, generator=gen).tolist()
        if group_by_length:  # as transformers' group_by_length: sort inside shuffled mega-batches
            mega = batch_size * 50
            perm = [i for s in range(0, n, mega) for i in sorted(perm[s:s + mega], key=lambda i: -self.lengths[i])]
        batches = [perm[i:i + batch_size] for i in range(0, n, batch_size)]
        if group_by_length:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]
        return batches

    def collate(self, idx: list[int], device: torch.device) -> dict[str, torch.Tensor]:
        width = max(self.lengths[i] for i in idx)
        out = {}
        for c in self.cols:
            pad = self.pad_id if c == "input_ids" else 0
            out[c] = torch.tensor([self.data[c][i] + [pad] * (width - self.lengths[i]) for i in idx], device=device)
        out["labels"] = torch.tensor([self.labels[i] for i in idx], dtype=self.label_dtype, device=device)
        return out


@torch.no_grad()
def predict_logits(model, batches: Batches, device: torch.device, batch_size: int = 128,
                   precision: str = "fp32") -> tuple[np.ndarray, np.ndarray]:
    was_training = model.training
    model.eval()
    order = batches.order(batch_size, None, False)
    logits = [None] * len(batches)
    for idx in order:
        b = batches.collate(idx, device)
        b.pop("labels")
        with _autocast(device, precision):
            out = model(**b).logits.float().cpu().numpy()
        for i, row in zip(idx, out):
            logits[i] = row
    model.train(was_training)
    return np.stack(logits), np.asarray(batches.labels)


def evaluate(model, task: TaskSpec, batches: Batches, device: torch.device, precision: str = "fp32") -> dict[str, float]:
    logits, labels = predict_logits(model, batches, device, precision=precision)
    return compute_metrics(task, logits, labels)


def _autocast(device: torch.device, precision: str = "fp32"):
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    if device.type == "cpu" and precision == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def scheduled_lr(peak: float, step: int, total: int, warmup: int) -> float:
    """The learning rate at ``step``: linear warm-up over ``warmup`` steps, then linear decay to 0 at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * max(0.0, (total - step) / max(1, total - warmup))


def _make_optimizer(model, lr: float, weight_decay: float, old: torch.optim.Optimizer | None = None):
    """AdamW over what is trainable now; after a merge/inject the surviving tensors keep their state."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    if old is not None:
        for p in params:
            if p in old.state:
                opt.state[p] = old.state[p]
    return opt


def optimizer_step(model, batch: dict[str, torch.Tensor], opt: torch.optim.Optimizer, params, args: TrainArgs,
                   device: torch.device, lr: float, step: int) -> torch.Tensor:
    """One AdamW step at ``lr`` on ``batch`` (clipping ``params``' gradients); the loss, or TrainingError."""
    for g in opt.param_groups:
        g["lr"] = lr
    with _autocast(device, args.precision):
        loss = model(**batch).loss
    if not torch.isfinite(loss):
        raise TrainingError(f"loss became {loss.item()} at step {step}")
    opt.zero_grad(set_to_none=True)  # an inactive super-adapter tensor keeps no gradient: AdamW leaves it alone
    loss.backward()
    if args.grad_clip:
        torch.nn.utils.clip_grad_norm_(params, args.grad_clip)
    opt.step()
    return loss


# --------------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------------
def prepare_data(task: TaskSpec, tokenizer, args: TrainArgs, data_dir=None):
    splits = load_task_data(task, data_dir=resolve_data_dir(data_dir), max_train_samples=args.max_train_samples,
                            max_eval_samples=args.max_eval_samples, seed=args.data_seed,
                            selection_fraction=args.selection_fraction, selection_cap=args.selection_cap)
    return encode_task(task, splits, tokenizer, max_length=args.max_length)


def train(task: str | TaskSpec, spec: AdapterSpec, args: TrainArgs | None = None, *, model_name: str | None = None,
          data_dir: str | None = None, out_dir: str | Path | None = None,
          on_eval: Callable[[int, dict[str, float]], None] | None = None) -> TrainResult:
    """Train ``spec`` on ``task``; returns the result (and with ``out_dir``, writes its ``metrics.json`` and
    ``adapter/`` there).

    ``on_eval(step, scores)`` is called after each evaluation (a caller's hook, e.g. for a live curve).
    """
    args = (args or TrainArgs()).validate()
    task = get_task(task) if isinstance(task, str) else task
    wall0, cpu0 = time.perf_counter(), time.process_time()
    device = pick_device(args.device)
    threads = set_cpu_threads() if device.type == "cpu" else None

    tokenizer = load_tokenizer(model_name)
    if not args.progress:
        import datasets

        datasets.disable_progress_bars()
    encoded = prepare_data(task, tokenizer, args, data_dir)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_rows = Batches(encoded["train"], pad_id, task.is_regression)
    dev_rows = Batches(encoded["validation"], pad_id, task.is_regression)
    # Checkpoints (and a search's trials) are chosen on the selection split when there is one.
    eval_rows = Batches(encoded["selection"], pad_id, task.is_regression) if "selection" in encoded else dev_rows
    num_labels = task.num_labels
    if getattr(task, "label_names", None) and not task.is_regression:
        num_labels = max(num_labels, len(task.label_names))

    seed_everything(args.seed)
    base = load_backbone(model_name, num_labels, task.is_regression, seed=args.seed, dropout=args.backbone_dropout)
    shape = model_shape(base, spec)
    planned = count_adapter_params(spec, shape)
    steps_per_epoch = math.ceil(len(train_rows) / args.batch_size)
    total_steps = planned_steps(args, len(train_rows))
    budget_final_at = None
    if spec.method == "adalora":  # its rank schedule is in steps of this run
        spec = AdapterSpec("adalora", adalora=dataclasses.replace(spec.adalora, total_step=total_steps))
        budget_final_at = adalora_schedule(spec.adalora, total_steps)["final_step"]
    model = attach(base, spec).to(device)
    model.train()
    warmup = int(total_steps * args.warmup_ratio)
    lor2c = spec.lor2c if spec.method == "lor2c" else None
    # Only the operations that succeed whatever the spectrum picks: the planned final count is then exact.
    schedule = structure_schedule(total_steps, *guaranteed_events(lor2c, shape.num_layers), args.structure_fraction) if lor2c else {}
    n_evals = min(math.ceil(total_steps / steps_per_epoch), args.max_evals)
    eval_points = set(range(args.eval_every, total_steps + 1, args.eval_every)) if args.eval_every else {
        math.ceil(total_steps * (e + 1) / n_evals) for e in range(n_evals)}
    eval_points.add(total_steps)

    opt = _make_optimizer(model, args.learning_rate, args.weight_decay)
    trainable = [p for p in model.parameters() if p.requires_grad]
    gen = torch.Generator().manual_seed(args.seed)
    history, evals, spectra = [], [], []
    best: dict[str, Any] = {"score": -math.inf, "state": None, "step": None, "scores": None}
    step, losses = 0, []
    # early stopping: evaluations since the best, and the step before which the structure is not final yet
    since_best, settled_at, stopped = 0, max([*schedule, budget_final_at or 0]), False
    progress = None
    if args.progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=total_steps, desc=f"train {task.name}", unit="step", leave=False, dynamic_ncols=True)

    while step < total_steps and not stopped:
        for idx in train_rows.order(args.batch_size, gen, args.group_by_length):
            if step >= total_steps or stopped:
                break
            batch = train_rows.collate(idx, device)
            loss = optimizer_step(model, batch, opt, trainable, args, device,
                                  scheduled_lr(args.learning_rate, step, total_steps, warmup), step)
            if spec.method == "adalora":
                model.base_model.update_and_allocate(step)
                if step == budget_final_at:  # ranks are pruned to the budget now: an earlier checkpoint kept them
                    best = {"score": -math.inf, "state": None, "step": None, "scores": None}
            step += 1
            losses.append(loss.item())
            if progress is not None:
                progress.update(1)
                if step % 10 == 0:
                    progress.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")

            if step in schedule and isinstance(model, LoR2CModel):
                spectra.append({"step": step, "scores": model.bypass_scores()})
                changed = False
                for op in schedule[step]:
                    event = model.merge() if op == "merge" else model.inject()
                    if event is not None:
                        event["step"] = step
                        history.append(event)
                        changed = True
                if changed:
                    opt = _make_optimizer(model, args.learning_rate, args.weight_decay, old=opt)
                    trainable = [p for p in model.parameters() if p.requires_grad]
                    best = {"score": -math.inf, "state": None, "step": None, "scores": None}  # old structure

            if step in eval_points:
                scores = evaluate(model, task, eval_rows, device, args.precision)
                evals.append({"step": step, "epoch": round(step / steps_per_epoch, 3),
                              "train_loss": float(np.mean(losses[-steps_per_epoch:])), **scores})
                if args.dev_curve and eval_rows is not dev_rows:
                    evals[-1].update({f"dev_{k}": v for k, v in
                                      evaluate(model, task, dev_rows, device, args.precision).items()})
                if on_eval is not None:
                    on_eval(step, scores)
                if scores[task.primary_metric] > best["score"]:
                    best = {"score": scores[task.primary_metric], "step": step, "scores": scores,
                            "state": {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}}
                    since_best = 0
                else:
                    since_best += 1
                stopped = bool(args.patience) and since_best >= args.patience and step >= settled_at
    if progress is not None:
        progress.close()

    if best["state"] is not None:
        model.load_state_dict(best["state"], strict=False)
    dev_scores = best["scores"] if eval_rows is dev_rows else (
        evaluate(model, task, dev_rows, device, args.precision) if args.score_dev else None)
    adapter_params, head_params = adapter_param_count(model)
    final_analytic = count_adapter_params(_final_spec(model, spec), shape)["initial"]
    if adapter_params != final_analytic:
        raise TrainingError(f"trainable adapter parameters {adapter_params} != analytic count {final_analytic}")

    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    result = TrainResult(
        task=task.name, method=spec.method, model=model_label(model_name), config=spec.to_dict(),
        final_structure=adapter_structure(model, spec), train_args=asdict(args), scores=best["scores"],
        eval_split="selection" if eval_rows is not dev_rows else "validation", dev_scores=dev_scores,
        dev_score=dev_scores[task.primary_metric] if dev_scores else None, primary_metric=task.primary_metric,
        primary_score=best["score"], best_step=best["step"], trainable_params=adapter_params,
        analytic_params=final_analytic, planned_params=planned, head_params=head_params,
        backbone_params=shape.backbone_params, steps=step, epochs=round(step / steps_per_epoch, 3),
        n_train=len(train_rows), n_eval=len(eval_rows), n_dev=len(dev_rows), wall_time_s=round(wall, 3),
        cpu_time_s=round(cpu, 3), gpu_time_s=round(wall, 3) if device.type == "cuda" else 0.0, device=str(device),
        threads=threads, history=history, spectra=spectra, evals=evals, adapted_model=model)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_adapter(model, out / "adapter", adapter_meta(task, model_name, args, num_labels, result))
        (out / "metrics.json").write_text(json.dumps(result.to_dict(), indent=2, default=_json_default))
    return result


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def _final_spec(model, spec: AdapterSpec) -> AdapterSpec:
    if isinstance(model, LoR2CModel):
        return AdapterSpec("lor2c", lor2c=model.lor2c_config)
    return spec


def adapter_meta(task: TaskSpec, model_name, args: TrainArgs, num_labels: int, result: TrainResult) -> dict[str, Any]:
    return {
        "task": task.name,
        "task_spec": asdict(task) if task.is_custom else None,
        "model": model_name,
        "num_labels": num_labels,
        "max_length": args.max_length,
        "seed": args.seed,
        "primary_metric": task.primary_metric,
        "primary_score": result.primary_score,
        "scores": result.scores,
        "trainable_params": result.trainable_params,
    }
