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
from autolor2c.tasks import TaskSpec, get_task, load_task_data, resolve_data_dir
from autolor2c.train import (TRAINER_VERSION, AdapterSpec, LoRASpec, TrainArgs, count_adapter_params, load_backbone,
                             model_label, model_shape, train)
from autolor2c.lor2c import ModelShape

from .budget import format_params, parse_budget
from .fidelity import RUNGS_ATTR, Fidelity, rung_points
from .pareto import front_indices, hypervolume, pick_best, pick_knee
from .space import SearchSpace, TrialPlan, default_space_path, load_space
from .storage_url import storage_kind

DEFAULT_STORAGE = "sqlite:///studies/autolor2c.db"
SAMPLERS = ("tpe", "gp", "nsga2", "random")
WORKER_ATTR = "autolor2c:worker"
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
    sampler: str = "gp"  # the best of tpe/gp/nsga2/random on our space (bench/results/p3_samplers.md)
    seed: int = 0
    trials: int | None = 20
    timeout: float | None = None
    epochs: float = 1.0
    max_train_samples: int | None = 4000   # a trial's full-fidelity training set (CPU-sized default)
    max_eval_samples: int | None = None
    max_length: int = 128
    batch_size: int = 32
    backbone_dropout: float | None = 0.0    # the frozen model's own dropout in trials and retrains (None: keep)
    seeds: int = 3                          # retrain seeds (0 skips)
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
                "max_train_samples": self.max_train_samples, "max_length": self.max_length,
                "fidelity": self.fidelity.to_dict(), "trainer": TRAINER_VERSION,
                "backbone_dropout": self.backbone_dropout}

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
            raise UserError(f"bad --storage {url!r}: cannot create {parent} ({e.strerror})") from None
    kwargs: dict[str, Any] = {}
    if heartbeat:
        kwargs = dict(heartbeat_interval=10, grace_period=40,
                      heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2))
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True} if scheme != "sqlite" else {},
                                          **kwargs)
    except Exception as e:  # sqlalchemy/driver errors: bad host, auth, missing driver
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot open --storage {url!r}: {msg[:200]}") from None


def make_sampler(name: str, seed: int, n_startup: int = 8) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(multivariate=True, group=True, constant_liar=True, seed=seed,
                                          n_startup_trials=n_startup)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, n_startup))
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise UserError(f"bad --sampler {name!r}: choose one of {', '.join(SAMPLERS)}")


def default_study_name(settings: SearchSettings) -> str:
    space = Path(settings.space_path()).stem
    return f"{settings.task}-{model_label(settings.model)}-b{settings.budget.strip().replace('%', 'pct')}-{space}"


def open_study(settings: SearchSettings, storage, name: str, primary_metric: str, create: bool = True) -> optuna.Study:
    sampler_seed = settings.seed * 1000 + settings.worker
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
            raise UserError(f"study {name!r} exists with different settings ({', '.join(diff)}); "
                            f"use --study-name to start another")
        # A different stream on resume, so random start-up points are not repeated.
        sampler_seed += 7919 * len(study.get_trials(deepcopy=False))
        study.sampler = make_sampler(settings.sampler, sampler_seed)
        return study
    study = optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"],
                                sampler=make_sampler(settings.sampler, sampler_seed), load_if_exists=True)
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


class Objective:
    """Trains one sampled configuration through the fidelity rungs; never trains one over budget."""

    def __init__(self, ctx: SearchContext, trainer: Callable[..., dict[str, Any]] = train):
        self.ctx = ctx
        self.trainer = trainer
        self.trained: list[int] = []  # trial numbers actually trained (tests assert on this)

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        ctx, s = self.ctx, self.ctx.settings
        trial.storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
        plan = ctx.space.suggest(trial, ctx.shape.num_layers)
        spec = plan_to_spec(plan)
        counts = count_adapter_params(spec, ctx.shape)
        trial.set_user_attr("plan", plan.to_dict())
        trial.set_user_attr("planned_params", counts)
        violation = counts["peak"] - ctx.budget
        trial.set_constraint("budget", float(violation))
        if violation > 0:
            # Infeasible: recorded at once with its exact count; the sampler learns from the constraint.
            trial.set_user_attr("feasible", False)
            trial.set_user_attr("trained", False)
            return 0.0, float(counts["final"])
        trial.set_user_attr("feasible", True)
        trial.set_user_attr("trained", True)
        self.trained.append(trial.number)
        rungs: list[dict[str, Any]] = []
        total_wall = total_cpu = total_gpu = 0.0
        result = None
        for k, frac in enumerate(ctx.settings.fidelity.fractions):
            n = max(s.batch_size, int(round(ctx.n_train_full * frac)))
            args = TrainArgs(epochs=plan.train.get("epochs", s.epochs),
                             learning_rate=plan.train.get("learning_rate", 2e-3),
                             batch_size=plan.train.get("batch_size", s.batch_size),
                             max_length=plan.train.get("max_length", s.max_length),
                             warmup_ratio=plan.train.get("warmup_ratio", 0.06),
                             weight_decay=plan.train.get("weight_decay", 0.01),
                             max_train_samples=min(n, ctx.n_train_full), max_eval_samples=s.max_eval_samples,
                             backbone_dropout=s.backbone_dropout, seed=s.seed, progress=False)
            result = self.trainer(ctx.task, spec, args, model_name=s.model, data_dir=s.data_dir)
            result.pop("model_object", None)
            total_wall += result["wall_time_s"]
            total_cpu += result["cpu_time_s"]
            total_gpu += result.get("gpu_time_s", 0.0)
            rungs.append({"rung": k, "fraction": frac, "n_train": result["n_train"], "steps": result["steps"],
                          "score": result["primary_score"], "params": result["trainable_params"],
                          "wall_s": result["wall_time_s"], "cpu_s": result["cpu_time_s"],
                          "gpu_s": result.get("gpu_time_s", 0.0)})
            trial.set_user_attr(RUNGS_ATTR, rungs)
            trial.set_user_attr("cost_s", round(total_wall, 3))
            trial.set_user_attr("cpu_s", round(total_cpu, 3))
            trial.set_user_attr("gpu_s", round(total_gpu, 3))
            if k == len(ctx.settings.fidelity.fractions) - 1:
                break
            others = rung_points(trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                                                 TrialState.RUNNING)),
                                 k, exclude_number=trial.number)
            if not ctx.settings.fidelity.should_promote((result["primary_score"], result["trainable_params"]), others):
                trial.set_user_attr("stopped_at_rung", k)
                raise optuna.TrialPruned(f"not promoted past rung {k} (fraction {frac:.3g})")
        trial.set_user_attr("final_structure", result["final_structure"])
        trial.set_user_attr("history", _compact_history(result["history"]))
        trial.set_user_attr("scores", result["scores"])
        trial.set_user_attr("n_train", result["n_train"])
        return float(result["primary_score"]), float(result["trainable_params"])


# --------------------------------------------------------------------------------------------------
# Study-level helpers
# --------------------------------------------------------------------------------------------------
def is_feasible(t: optuna.trial.FrozenTrial) -> bool:
    return t.state == TrialState.COMPLETE and t.user_attrs.get("feasible", True) and \
        all(v <= 0 for k, v in t.system_attrs.items() if k.startswith("constraints"))


def feasible_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if is_feasible(t)]


def pareto_front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    trials = feasible_trials(study)
    idx = front_indices([(t.values[0], t.values[1]) for t in trials])
    return [trials[i] for i in idx]


def study_hypervolume(study: optuna.Study, budget: int) -> float:
    return hypervolume([(t.values[0], t.values[1]) for t in feasible_trials(study)], budget)


def hypervolume_history(study: optuna.Study, budget: int) -> list[dict[str, float]]:
    """Hypervolume after each finished trial (in order of completion)."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state in DONE_STATES or t.state == TrialState.FAIL]
    done.sort(key=lambda t: (t.datetime_complete or t.datetime_start or 0, t.number))
    pts, out, elapsed = [], [], 0.0
    for n, t in enumerate(done, 1):
        elapsed += float(t.user_attrs.get("cost_s", 0.0))
        if is_feasible(t):
            pts.append((t.values[0], t.values[1]))
        out.append({"trial": t.number, "n": n, "cost_s": round(elapsed, 3), "hypervolume": hypervolume(pts, budget)})
    return out


def pick_trial(study: optuna.Study, how: str = "best", number: int | None = None) -> optuna.trial.FrozenTrial:
    if number is not None:
        matches = [t for t in study.get_trials(deepcopy=False) if t.number == number]
        if not matches:
            raise UserError(f"bad --trial {number}: no such trial in study {study.study_name!r}")
        t = matches[0]
        if not is_feasible(t):
            raise UserError(f"bad --trial {number}: it is {t.state.name.lower()}"
                            f"{' and over budget' if t.user_attrs.get('feasible') is False else ''}, not a finished feasible trial")
        return t
    front = pareto_front(study)
    if not front:
        raise UserError(f"study {study.study_name!r} has no finished feasible trial yet")
    pts = [(t.values[0], t.values[1]) for t in front]
    if how == "best":
        return front[pick_best(pts)]
    if how == "knee":
        return front[pick_knee(pts)]
    raise UserError(f"bad --pick {how!r}: best or knee")


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
        worker = t.system_attrs.get(WORKER_ATTR, "")
        if ":" not in worker:
            continue
        w_host, w_pid = worker.rsplit(":", 1)
        if w_host != host or _pid_alive(int(w_pid)):
            continue
        study._storage.set_trial_user_attr(t._trial_id, "fail_reason", f"interrupted: worker {worker} is gone")
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        if requeue:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
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
        raise UserError(f"bad --warm-start {source!r}: no such study") from None
    front = pareto_front(src)
    if not front:
        raise UserError(f"bad --warm-start {source!r}: that study has no finished feasible trial")
    # a waiting (enqueued) trial holds its parameters in fixed_params until it runs
    queued = {tuple(sorted((t.system_attrs.get("fixed_params", {}) if t.state == TrialState.WAITING else t.params).items()))
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
                            max_eval_samples=settings.max_eval_samples)
    n_full = len(splits["train"])
    if settings.max_train_samples:
        n_full = min(n_full, settings.max_train_samples)
    return SearchContext(settings, task, space, shape, budget, n_full)


class _Progress:
    """Trials done, best feasible score, hypervolume: one tqdm bar (a callback, not a framework)."""

    def __init__(self, study: optuna.Study, ctx: SearchContext, target: int | None, enabled: bool):
        self.ctx, self.study = ctx, study
        self.failures_in_a_row = 0
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            done = len([t for t in study.get_trials(deepcopy=False, states=DONE_STATES)])
            self.bar = tqdm(total=target, initial=min(done, target or done), desc=f"search {study.study_name}",
                            unit="trial", dynamic_ncols=True)
            self._postfix()

    def _postfix(self) -> None:
        feas = feasible_trials(self.study)
        best = max((t.values[0] for t in feas), default=float("nan"))
        hv = study_hypervolume(self.study, self.ctx.budget)
        if self.bar is not None:
            self.bar.set_postfix_str(f"best {self.ctx.task.primary_metric}={best:.4f} hv={hv:.4f} feasible={len(feas)}")

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.failures_in_a_row = self.failures_in_a_row + 1 if trial.state == TrialState.FAIL else 0
        if self.bar is not None and trial.state in DONE_STATES:
            self.bar.update(1)
        if self.bar is not None:
            self._postfix()
        study.set_user_attr("cost", cost_totals(study))
        if self.failures_in_a_row >= self.ctx.settings.max_consecutive_failures:
            reason = trial.user_attrs.get("fail_reason", "")
            print(f"stopping: {self.failures_in_a_row} trials failed in a row (last: {reason})")
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


def run_search(settings: SearchSettings, objective_factory: Callable[[SearchContext], Objective] = Objective,
               on_study_ready: Callable[[optuna.Study], None] | None = None):
    """Create or resume the study and run trials until ``settings.trials`` are done or the timeout hits.

    ``on_study_ready(study)`` runs once the study exists (the CLI starts its extra worker processes there).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ctx = build_context(settings)
    storage = resolve_storage(settings.storage)
    name = settings.study_name or default_study_name(settings)
    study = open_study(settings, storage, name, ctx.task.primary_metric)
    study.set_user_attr("budget_params", ctx.budget)
    study.set_user_attr("space", ctx.space.name)
    study.set_user_attr("backbone_params", ctx.shape.backbone_params)
    study.set_user_attr("model_arg", settings.model)
    data_dir = resolve_data_dir(settings.data_dir)
    study.set_user_attr("data_dir", str(data_dir.resolve()) if data_dir else None)
    study.set_user_attr("space_path", str(Path(settings.space_path()).resolve()))
    retried = fail_orphaned_trials(study)
    if on_study_ready is not None:
        on_study_ready(study)
    if settings.warm_start:
        n = warm_start(study, settings.warm_start, settings.storage, ctx.space, ctx.shape.num_layers)
        print(f"warm start: queued {n} configuration(s) from {settings.warm_start}")
    objective = objective_factory(ctx)
    done = len(study.get_trials(deepcopy=False, states=DONE_STATES))
    target = settings.trials
    print(f"study {name!r} in {settings.storage or DEFAULT_STORAGE}: {done} trial(s) done"
          f"{f', {len(retried)} interrupted trial(s) re-queued' if retried else ''}; budget "
          f"{format_params(ctx.budget)} params; space {ctx.space.name}; fidelity rungs "
          f"{', '.join(f'{f:.3g}' for f in settings.fidelity.fractions)} of {ctx.n_train_full} examples")
    progress = _Progress(study, ctx, target, settings.progress)
    started = time.time()
    try:
        if target is None or done < target:
            callbacks = [progress]
            if target is not None:
                callbacks.append(optuna.study.MaxTrialsCallback(target, states=DONE_STATES))
            study.optimize(_failure_recording(objective), n_trials=None if target is None else 10 * target,
                           timeout=settings.timeout, catch=(Exception,), callbacks=callbacks, gc_after_trial=True)
    finally:
        progress.close()
    study.set_user_attr("cost", cost_totals(study))
    return study, ctx, objective, time.time() - started

