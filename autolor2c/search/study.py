"""The search: a two-objective Optuna study (task score up, trainable adapter parameters down) under a
parameter budget, with multi-fidelity rungs, resume, failure records, and the Pareto pick.

The search sees a model only through a ``ModelShape`` and exact parameter counts.
"""

from __future__ import annotations

import os
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import warnings

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

# group=True, set_metric_names and fail_stale_trials are "experimental" in Optuna: we rely on them knowingly.
warnings.filterwarnings("ignore", category=ExperimentalWarning)

from autolor2c.errors import UserError
from autolor2c.tasks import TaskSpec, get_task, load_task_data, resolve_data_dir, trivial_score
from autolor2c.train import (TRAINER_VERSION, AdapterSpec, LoRASpec, TrainArgs, TrainResult, count_adapter_params,
                             load_backbone, model_label, model_shape, train, training_args)
from autolor2c.lor2c import ModelShape

from .budget import format_params, parse_budget
from .fidelity import RUNGS_ATTR, Fidelity, next_promotion
from .optuna_internals import WORKER_ATTR, fail_trial, frozen_trial, queued_params, set_worker, worker_of  # noqa: F401
from .sampler import PROMOTED_FROM_ATTR, RungAwareSampler, configuration_chains
from .pareto import front_indices, hypervolume, pick_best, pick_knee
from .space import SearchSpace, TrialPlan, default_space_path, load_space
from .storage_url import storage_kind

DEFAULT_STORAGE = "sqlite:///studies/autolor2c.db"
SAMPLERS = ("parego", "tpe", "gp", "nsga2", "random")
DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class SearchSettings:
    task: str = "sst2"
    budget: str = "0.1M"
    model: str | None = None
    data_dir: str | None = None
    space: str | None = None
    storage: str | None = None
    study_name: str | None = None
    # TPE on a ParEGO view that sees pruned trials' rung scores (sampler.py): Optuna's own samplers
    # learn nothing from pruned trials in a two-objective study.
    sampler: str = "parego"
    seed: int = 0
    trials: int | None = 20                 # configurations trained (promotions and over-budget ones not counted)
    timeout: float | None = None
    # None means the library's default (autolor2c.train.TrainArgs), here and in every training setting.
    epochs: float | None = None
    max_train_samples: int | None = 4000   # a trial's full-fidelity training set (CPU-sized default)
    max_eval_samples: int | None = None
    max_length: int | None = None
    batch_size: int | None = None
    min_steps: int | None = None            # optimiser steps of a full-fidelity trial and a retrain, at least
    backbone_dropout: float | None = 0.0    # the frozen model's own dropout in trials and retrains (None: keep)
    selection_fraction: float = 0.1         # training rows held out to score trials on (never the dev set)
    seeds: int = 3                          # retrain seeds of the pick (0 skips retraining)
    front_retrains: int = 3                 # front points retrained: the pick, then knee and smallest (1 seed each)
    baselines: bool = True                  # retrain the built-in configurations that fit the budget, for comparison
    retrain_epochs: float | None = None     # None: same as trials
    retrain_samples: int | None = None      # None: the full training set
    pick: str = "best"
    out: str | None = None
    fidelity: Fidelity = field(default_factory=Fidelity.geometric)
    warm_start: str | None = None
    worker: int = 0
    progress: bool = True
    max_consecutive_failures: int = 5

    def identity(self) -> dict[str, Any]:
        """What must match for a resumed study to be the same search."""
        return {"task": self.task, "model": model_label(self.model), "budget": self.budget,
                "space": Path(self.space_path()).name, "epochs": self.epochs,
                "max_train_samples": self.max_train_samples, "max_length": self.max_length, "min_steps": self.min_steps,
                "fidelity": self.fidelity.to_dict(), "trainer": TRAINER_VERSION,
                "backbone_dropout": self.backbone_dropout, "selection_fraction": self.selection_fraction}

    def train_args(self, plan_train: dict[str, Any] | None = None, *, stage: str, n_full: int | None = None,
                   fraction: float = 1.0, seed: int | None = None, progress: bool = False) -> TrainArgs:
        """Training arguments of a trial's rung (``stage='trial'``) or of a retrain (``'retrain'``)."""
        common = dict(batch_size=self.batch_size, max_length=self.max_length, max_eval_samples=self.max_eval_samples,
                      min_steps=self.min_steps,
                      backbone_dropout=self.backbone_dropout, selection_fraction=self.selection_fraction,
                      seed=self.seed if seed is None else seed, progress=progress)
        if stage == "trial":
            return training_args(plan_train, fraction=fraction, epochs=self.epochs, max_train_samples=n_full,
                                 score_dev=False, **common)
        if stage == "retrain":
            return training_args(plan_train, epochs=self.retrain_epochs or self.epochs,
                                 max_train_samples=self.retrain_samples, **common)
        raise ValueError(f"stage must be 'trial' or 'retrain', got {stage!r}")

    def space_path(self) -> str:
        return str(self.space) if self.space else str(default_space_path())


# --------------------------------------------------------------------------------------------------
# Storage, samplers, study
# --------------------------------------------------------------------------------------------------
def resolve_storage(url: str | None, heartbeat: bool = True):
    """An Optuna storage for a URL: RDB (sqlite/postgresql/mysql) with heartbeats, a journal file
    (``journal:PATH`` or a ``.log`` path), or Optuna's in-memory storage (``memory``)."""
    url = url or os.environ.get("AUTOLOR2C_STORAGE") or DEFAULT_STORAGE
    scheme = storage_kind(url)
    if scheme == "memory":
        return optuna.storages.InMemoryStorage()
    if scheme == "journal":
        path = url.split(":", 1)[1] if url.startswith("journal:") else url
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(path))
    if scheme == "sqlite":
        parent = Path(url.split(":///", 1)[1]).parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create {parent} ({e.strerror})", param="storage", value=url) from None
    kwargs: dict[str, Any] = {}
    if heartbeat:
        kwargs = dict(heartbeat_interval=10, grace_period=40,
                      heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2))
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True} if scheme != "sqlite" else {},
                                          **kwargs)
    except Exception as e:  # sqlalchemy/driver errors: bad host, auth, missing driver
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot open it: {msg[:200]}", param="storage", value=url) from None


def make_sampler(name: str, seed: int, n_startup: int = 8, *, budget: float = 1.0,
                 top_rung: int = 0) -> optuna.samplers.BaseSampler:
    if name == "parego":
        return RungAwareSampler(budget, top_rung, seed=seed, n_startup_trials=n_startup)
    if name == "tpe":
        return optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True, seed=seed,
                                          n_startup_trials=n_startup)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, n_startup))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise UserError(f"choose one of {', '.join(SAMPLERS)}", param="sampler", value=name)


def default_study_name(settings: SearchSettings) -> str:
    space = Path(settings.space_path()).stem
    return f"{settings.task}-{model_label(settings.model)}-b{settings.budget.strip().replace('%', 'pct')}-{space}"


def sampler_seed(settings: SearchSettings, n_trials_so_far: int = 0) -> int:
    """The sampler's seed: one stream per worker, and a different one on every resume (after ``n`` trials),
    so a seeded random start-up does not draw the configurations it drew before."""
    return settings.seed * 1000 + settings.worker + 7919 * n_trials_so_far


def open_study(settings: SearchSettings, storage, name: str, primary_metric: str, create: bool = True,
               budget: float = 1.0) -> optuna.Study:
    top_rung = len(settings.fidelity.fractions) - 1
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        existed = True
    except KeyError:
        if not create:
            raise UserError(f"no study named {name!r} in this storage") from None
        existed = False
    if existed:
        got = study.user_attrs.get("identity")
        want = settings.identity()
        if got is not None and got != want:
            diff = sorted(k for k in want if got.get(k) != want.get(k))
            raise UserError(f"the study exists with different settings ({', '.join(diff)}); choose another name "
                            f"to start a new study", param="study_name", value=name)
        seed = sampler_seed(settings, len(study.get_trials(deepcopy=False)))
        study.sampler = make_sampler(settings.sampler, seed, budget=budget, top_rung=top_rung)
        return study
    study = optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"],
                                sampler=make_sampler(settings.sampler, sampler_seed(settings), budget=budget,
                                                     top_rung=top_rung),
                                load_if_exists=True)
    study.set_metric_names([primary_metric, "trainable_params"])
    study.set_user_attr("identity", settings.identity())
    return study


# --------------------------------------------------------------------------------------------------
# One trial
# --------------------------------------------------------------------------------------------------
def plan_to_spec(plan: TrialPlan) -> AdapterSpec:
    if plan.method == "lor2c":
        return AdapterSpec("lor2c", lor2c=plan.adapter)
    return AdapterSpec("lora", lora=LoRASpec.from_dict(dict(plan.adapter)))


def _compact_history(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = ("op", "step", "spans", "into", "layer", "span", "score")
    return [{k: e[k] for k in keep if k in e} for e in history]


@dataclass
class SearchContext:
    settings: SearchSettings
    task: TaskSpec
    space: SearchSpace
    shape: ModelShape
    budget: int
    n_train_full: int
    trivial: float = 0.0       # the input-blind score on the selection split: hypervolume's reference
    trivial_dev: float = 0.0   # the same on the dev set


class Objective:
    """Trains one sampled configuration at one fidelity rung; never trains one over budget.

    A new configuration starts at rung 0; a queued promotion (``promoted_from``) continues a configuration
    at ``start_rung``. Below the top rung the trial ends PRUNED (paused, see fidelity.py); at the top rung
    its (score, params) are the study's objective values. An over-budget configuration ends PRUNED at
    once, untrained, with its exact count and the budget constraint: no score is made up for it.
    """

    def __init__(self, ctx: SearchContext, trainer: Callable[..., TrainResult] = train):
        self.ctx = ctx
        self.trainer = trainer
        self.trained: list[int] = []  # trial numbers actually trained (tests assert on this)

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        ctx, s = self.ctx, self.ctx.settings
        set_worker(trial, f"{socket.gethostname()}:{os.getpid()}")
        plan = ctx.space.suggest(trial, ctx.shape.num_layers)
        spec = plan_to_spec(plan)
        counts = count_adapter_params(spec, ctx.shape)
        trial.set_user_attr("plan", plan.to_dict())
        trial.set_user_attr("planned_params", counts)
        violation = counts["peak"] - ctx.budget
        trial.set_constraint("budget", float(violation))
        if violation > 0:
            trial.set_user_attr("feasible", False)
            trial.set_user_attr("trained", False)
            raise optuna.TrialPruned(f"over budget by {violation} params: not trained")
        trial.set_user_attr("feasible", True)
        trial.set_user_attr("trained", True)
        self.trained.append(trial.number)
        rungs: list[dict[str, Any]] = []
        source = trial.user_attrs.get(PROMOTED_FROM_ATTR)
        rung = int(trial.user_attrs.get("start_rung", 0))
        if source is not None:  # the configuration's earlier rungs, for reading this trial alone
            src = frozen_trial(trial.study, int(source))
            rungs = [dict(r, from_trial=r.get("from_trial", src.number)) for r in src.user_attrs.get(RUNGS_ATTR, [])
                     if r["rung"] < rung]
        frac = s.fidelity.fractions[rung]
        args = s.train_args(plan.train, stage="trial", n_full=ctx.n_train_full, fraction=frac)
        result = self.trainer(ctx.task, spec, args, model_name=s.model, data_dir=s.data_dir)
        rungs.append({"rung": rung, "fraction": frac, "n_train": result.n_train, "steps": result.steps,
                      "score": result.primary_score, "params": result.trainable_params,
                      "wall_s": result.wall_time_s, "cpu_s": result.cpu_time_s, "gpu_s": result.gpu_time_s})
        trial.set_user_attr(RUNGS_ATTR, rungs)
        trial.set_user_attr("cost_s", round(result.wall_time_s, 3))
        trial.set_user_attr("cpu_s", round(result.cpu_time_s, 3))
        trial.set_user_attr("gpu_s", round(result.gpu_time_s, 3))
        trial.set_user_attr("final_structure", result.final_structure)
        trial.set_user_attr("history", _compact_history(result.history))
        trial.set_user_attr("scores", result.scores)
        trial.set_user_attr("n_train", result.n_train)
        if rung < len(s.fidelity.fractions) - 1:
            trial.set_user_attr("stopped_at_rung", rung)
            raise optuna.TrialPruned(f"paused at rung {rung} (fraction {frac:.3g}) until promoted")
        return float(result.primary_score), float(result.trainable_params)


def trained_configurations(study: optuna.Study) -> int:
    """Configurations trained so far (a promotion continues one; an over-budget one is not trained)."""
    trials = study.get_trials(deepcopy=False, states=DONE_STATES)
    return sum(1 for chain in configuration_chains(trials).values() if chain[0].user_attrs.get("trained"))


def queue_promotion(study: optuna.Study, fidelity: Fidelity) -> int | None:
    """Queue ASHA's next promotion, if any, as a trial with the same parameters; returns its source."""
    if not fidelity.enabled:
        return None
    trials = study.get_trials(deepcopy=False)
    promo = next_promotion(trials, fidelity)
    if promo is None:
        return None
    number, rung = promo
    src = next(t for t in trials if t.number == number)
    study.enqueue_trial(dict(src.params), user_attrs={PROMOTED_FROM_ATTR: number, "start_rung": rung},
                        skip_if_exists=False)
    return number


# --------------------------------------------------------------------------------------------------
# Study-level helpers
# --------------------------------------------------------------------------------------------------
def is_feasible(t: optuna.trial.FrozenTrial) -> bool:
    return t.state == TrialState.COMPLETE and t.user_attrs.get("feasible", True) and \
        all(v <= 0 for v in t.constraints.values())


def feasible_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if is_feasible(t)]


def pareto_front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    trials = feasible_trials(study)
    idx = front_indices([(t.values[0], t.values[1]) for t in trials])
    return [trials[i] for i in idx]


def study_hypervolume(study: optuna.Study, budget: int, score_floor: float = 0.0) -> float:
    return hypervolume([(t.values[0], t.values[1]) for t in feasible_trials(study)], budget, score_floor)


def hypervolume_history(study: optuna.Study, budget: int, score_floor: float = 0.0) -> list[dict[str, float]]:
    """Hypervolume after each finished trial (in order of completion)."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state in DONE_STATES or t.state == TrialState.FAIL]
    done.sort(key=lambda t: (t.datetime_complete or t.datetime_start or 0, t.number))
    pts, out, elapsed = [], [], 0.0
    for n, t in enumerate(done, 1):
        elapsed += float(t.user_attrs.get("cost_s", 0.0))
        if is_feasible(t):
            pts.append((t.values[0], t.values[1]))
        out.append({"trial": t.number, "n": n, "cost_s": round(elapsed, 3),
                    "hypervolume": hypervolume(pts, budget, score_floor)})
    return out


def pick_trial(study: optuna.Study, pick: str = "best", trial: int | None = None) -> optuna.trial.FrozenTrial:
    """Trial number ``trial`` if given (it must be finished and feasible), else the front's ``pick``
    (``best`` score or the ``knee``)."""
    if trial is not None:
        matches = [t for t in study.get_trials(deepcopy=False) if t.number == trial]
        if not matches:
            raise UserError(f"no such trial in study {study.study_name!r}", param="trial", value=trial)
        t = matches[0]
        if not is_feasible(t):
            raise UserError(f"it is {t.state.name.lower()}{' and over budget' if t.user_attrs.get('feasible') is False else ''}"
                            ", not a finished feasible trial", param="trial", value=trial)
        return t
    front = pareto_front(study)
    if not front:
        raise UserError(f"study {study.study_name!r} has no finished feasible trial yet")
    pts = [(t.values[0], t.values[1]) for t in front]
    if pick == "best":
        return front[pick_best(pts)]
    if pick == "knee":
        return front[pick_knee(pts)]
    raise UserError("best or knee", param="pick", value=pick)


def cost_totals(study: optuna.Study) -> dict[str, float]:
    trials = study.get_trials(deepcopy=False)
    by_state: dict[str, int] = {}
    for t in trials:
        by_state[t.state.name] = by_state.get(t.state.name, 0) + 1
    infeasible = sum(1 for t in trials if t.user_attrs.get("feasible") is False)
    return {
        "trials": len(trials), **{f"n_{k.lower()}": v for k, v in sorted(by_state.items())},
        "n_infeasible": infeasible,
        "wall_s": round(sum(float(t.user_attrs.get("cost_s", 0.0)) for t in trials), 3),
        "cpu_s": round(sum(float(t.user_attrs.get("cpu_s", 0.0)) for t in trials), 3),
        "gpu_s": round(sum(float(t.user_attrs.get("gpu_s", 0.0)) for t in trials), 3),
    }


def fail_orphaned_trials(study: optuna.Study, requeue: bool = True) -> list[int]:
    """Mark RUNNING trials of dead processes on this host as FAIL and queue their parameters again
    (a kill -9 leaves them RUNNING; heartbeats catch other hosts after their grace period)."""
    host = socket.gethostname()
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = worker_of(t)
        if ":" not in worker:
            continue
        w_host, w_pid = worker.rsplit(":", 1)
        if w_host != host or _pid_alive(int(w_pid)):
            continue
        fail_trial(study, t, f"interrupted: worker {worker} is gone")
        if requeue:
            keep = {k: t.user_attrs[k] for k in (PROMOTED_FROM_ATTR, "start_rung") if k in t.user_attrs}
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number, **keep}, skip_if_exists=False)
        failed.append(t.number)
    try:
        optuna.storages.fail_stale_trials(study)
    except (RuntimeError, ValueError):  # storages without heartbeats
        pass
    return failed


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def warm_start(study: optuna.Study, source: str, storage_url: str | None, space: SearchSpace, num_layers: int) -> int:
    """Enqueue the Pareto configurations of another finished study as this study's first trials.

    ``source`` is a study name in the same storage, or ``STORAGE_URL#STUDY`` for another storage.
    """
    if "#" in source:
        url, name = source.rsplit("#", 1)
    else:
        url, name = storage_url, source
    try:
        src = optuna.load_study(study_name=name, storage=resolve_storage(url, heartbeat=False))
    except KeyError:
        raise UserError("no such study", param="warm_start", value=source) from None
    front = pareto_front(src)
    if not front:
        raise UserError("that study has no finished feasible trial", param="warm_start", value=source)
    # a waiting (enqueued) trial holds its parameters in fixed_params until it runs
    queued = {tuple(sorted((queued_params(t) if t.state == TrialState.WAITING else t.params).items()))
              for t in study.get_trials(deepcopy=False)}
    n = 0
    for t in front:
        key = tuple(sorted(t.params.items()))
        if key in queued:
            continue
        try:
            space.fixed_plan(t.params, num_layers)
        except UserError:
            continue  # a configuration this space cannot express
        study.enqueue_trial(t.params, user_attrs={"warm_start_from": f"{name}#{t.number}"})
        queued.add(key)
        n += 1
    return n


# --------------------------------------------------------------------------------------------------
# Setting up and running
# --------------------------------------------------------------------------------------------------
def build_context(settings: SearchSettings) -> SearchContext:
    task = get_task(settings.task)
    if not settings.budget.strip().endswith("%"):
        parse_budget(settings.budget)  # fail fast, before loading anything
    space = load_space(settings.space_path())
    base = load_backbone(settings.model, task.num_labels, task.is_regression)
    if space.method == "lora":
        spec_for_shape = AdapterSpec("lora", lora=LoRASpec())
    else:
        spec_for_shape = None
    shape = model_shape(base, spec_for_shape)
    budget = parse_budget(settings.budget, shape.backbone_params)
    splits = load_task_data(task, data_dir=resolve_data_dir(settings.data_dir), max_train_samples=None,
                            max_eval_samples=settings.max_eval_samples, selection_fraction=settings.selection_fraction,
                            selection_cap=TrainArgs.selection_cap)
    n_full = len(splits["train"])
    if settings.max_train_samples:
        n_full = min(n_full, settings.max_train_samples)
    scored_on = splits["selection"] if "selection" in splits else splits["validation"]
    trivial = trivial_score(task, splits["train"]["label"], scored_on["label"])
    trivial_dev = trivial_score(task, splits["train"]["label"], splits["validation"]["label"])
    return SearchContext(settings, task, space, shape, budget, n_full, trivial, trivial_dev)


class _Progress:
    """Configurations trained, best feasible score, hypervolume: one tqdm bar; after each trial it queues
    ASHA's next promotion and stops the study once ``target`` configurations are trained and no
    promotion is left (a callback, not a framework)."""

    def __init__(self, study: optuna.Study, ctx: SearchContext, target: int | None, enabled: bool):
        self.ctx, self.study, self.target = ctx, study, target
        self.failures_in_a_row = 0
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            done = trained_configurations(study)
            self.bar = tqdm(total=target, initial=min(done, target or done), desc=f"search {study.study_name}",
                            unit="config", dynamic_ncols=True)
            self._postfix()

    def _postfix(self) -> None:
        feas = feasible_trials(self.study)
        best = max((t.values[0] for t in feas), default=float("nan"))
        hv = study_hypervolume(self.study, self.ctx.budget, self.ctx.trivial)
        if self.bar is not None:
            self.bar.set_postfix_str(f"best {self.ctx.task.primary_metric}={best:.4f} hv={hv:.4f} full-fidelity={len(feas)}")

    def finished(self) -> bool:
        """Queue a promotion if one is due; True when nothing is left to do."""
        if queue_promotion(self.study, self.ctx.settings.fidelity) is not None:
            return False
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        return not waiting and self.target is not None and trained_configurations(self.study) >= self.target

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.failures_in_a_row = self.failures_in_a_row + 1 if trial.state == TrialState.FAIL else 0
        if self.bar is not None:
            self.bar.n = min(trained_configurations(study), self.target or 10**9)
            self.bar.refresh()
            self._postfix()
        study.set_user_attr("cost", cost_totals(study))
        if self.failures_in_a_row >= self.ctx.settings.max_consecutive_failures:
            reason = trial.user_attrs.get("fail_reason", "")
            print(f"stopping: {self.failures_in_a_row} trials failed in a row (last: {reason})")
            study.stop()
        elif self.finished():
            study.stop()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _failure_recording(objective: Objective) -> Callable[[optuna.Trial], tuple[float, float]]:
    def wrapped(trial: optuna.Trial):
        try:
            return objective(trial)
        except optuna.TrialPruned:
            raise
        except Exception as e:  # recorded on the trial; study.optimize(catch=...) marks it FAIL and goes on
            reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:500]
            trial.set_user_attr("fail_reason", reason)
            trial.set_user_attr("fail_traceback", traceback.format_exc()[-2000:])
            raise
    return wrapped


def prepare_study(settings: SearchSettings, ctx: SearchContext, storage, name: str) -> optuna.Study:
    """Create or open the study and record what ``retrain``, ``export`` and ``show`` need to rebuild the search
    (the one set-up both backends use; they only run trials)."""
    study = open_study(settings, storage, name, ctx.task.primary_metric, budget=ctx.budget)
    data_dir = resolve_data_dir(settings.data_dir)
    for key, value in {"budget_params": ctx.budget, "trivial_score": {"selection": ctx.trivial, "dev": ctx.trivial_dev},
                       "space": ctx.space.name, "backbone_params": ctx.shape.backbone_params,
                       "model_arg": settings.model, "data_dir": str(data_dir.resolve()) if data_dir else None,
                       "space_path": str(Path(settings.space_path()).resolve())}.items():
        study.set_user_attr(key, value)
    return study


def run_search(settings: SearchSettings, objective_factory: Callable[[SearchContext], Objective] = Objective,
               on_study_ready: Callable[[optuna.Study], None] | None = None, ctx: SearchContext | None = None):
    """Create or resume the study and run trials until ``settings.trials`` are done or the timeout hits.

    ``on_study_ready(study)`` runs once the study exists (the CLI starts its extra worker processes there).
    ``ctx``: a context already built for these settings (the benchmark replays reuse one model and dataset).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if ctx is None:
        ctx = build_context(settings)
    elif ctx.settings is not settings:
        raise ValueError("ctx was built for other settings")
    storage = resolve_storage(settings.storage)
    name = settings.study_name or default_study_name(settings)
    study = prepare_study(settings, ctx, storage, name)
    retried = fail_orphaned_trials(study)
    if on_study_ready is not None:
        on_study_ready(study)
    if settings.warm_start:
        n = warm_start(study, settings.warm_start, settings.storage, ctx.space, ctx.shape.num_layers)
        print(f"warm start: queued {n} configuration(s) from {settings.warm_start}")
    objective = objective_factory(ctx)
    done = trained_configurations(study)
    target = settings.trials
    print(f"study {name!r} in {settings.storage or DEFAULT_STORAGE}: {done} configuration(s) trained"
          f"{f', {len(retried)} interrupted trial(s) re-queued' if retried else ''}; budget "
          f"{format_params(ctx.budget)} params; space {ctx.space.name}; fidelity rungs "
          f"{', '.join(f'{f:.3g}' for f in settings.fidelity.fractions)} of {ctx.n_train_full} examples; "
          f"scored on {'a selection split of the training data' if settings.selection_fraction else 'the dev set'}")
    progress = _Progress(study, ctx, target, settings.progress)
    started = time.time()
    try:
        if not progress.finished():
            # Over-budget trials are free and not counted, so the trial cap is only a guard.
            study.optimize(_failure_recording(objective), n_trials=None if target is None else 20 * target + 20,
                           timeout=settings.timeout, catch=(Exception,), callbacks=[progress], gc_after_trial=True)
    finally:
        progress.close()
    study.set_user_attr("cost", cost_totals(study))
    return study, ctx, objective, time.time() - started

