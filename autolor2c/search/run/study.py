"""The study: create or resume it (recovering trials a killed process left running), its sampler, the context
every trial shares, and the loop that runs trials with the study callbacks (promotions, progress, stop rule).

The search sees a model only through a ``ModelShape`` and exact parameter counts.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Callable

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

# group=True, set_metric_names and fail_stale_trials are "experimental" in Optuna: we rely on them knowingly.
warnings.filterwarnings("ignore", category=ExperimentalWarning)

from autolor2c.errors import UserError
from autolor2c.tasks import get_task, load_task_data, resolve_data_dir, trivial_score
from autolor2c.train import AdapterSpec, LoRASpec, TrainArgs, load_backbone, model_label, model_shape, planned_steps

from .. import record
from ..fidelity import Promotions, next_promotion
from ..front import cost_totals, trained_configurations
from ..space import format_params, load_space, parse_budget
from .objective import Objective, SearchContext, failure_recording
from .optuna_internals import fail_trial, last_beat, worker_of
from .owner import is_gone
from .ordered import OrderedSampler
from .progress import Progress
from .sampler import RungAwareSampler
from .settings import DEFAULT_STORAGE, SAMPLERS, SearchSettings, rungs_needed
from .starting_points import enqueue_builtins, startable_builtins, warm_start
from .storage import resolve_storage


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
               budget: float = 1.0, top_rung: int = 0) -> optuna.Study:
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        existed = True
    except KeyError:
        if not create:
            raise UserError(f"no study named {name!r} in this storage") from None
        existed = False
    if existed:
        got = study.user_attrs.get(record.IDENTITY)
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
    study.set_user_attr(record.IDENTITY, settings.identity())
    return study


def fail_orphaned_trials(study: optuna.Study, requeue: bool = True,
                         gone: Callable[[str, float | None], bool] = is_gone) -> list[int]:
    """Mark RUNNING trials of dead processes as FAIL and queue their parameters again (a kill -9 leaves them
    RUNNING): this host's dead processes, and on a journal file another host's whose beats stopped (an RDB
    storage's heartbeats catch those after their grace period). ``gone(owner, last_beat)`` says whether a
    trial's owner is dead; a caller that knows no process runs the study now passes one that says so."""
    failed = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = worker_of(t)
        if not gone(worker, last_beat(t)):
            continue
        fail_trial(study, t, f"interrupted: worker {worker} is gone")
        if requeue:
            keep = {k: t.user_attrs[k] for k in (record.PROMOTED_FROM, record.START_RUNG, record.BUILTIN)
                    if k in t.user_attrs}
            study.enqueue_trial(t.params, user_attrs={record.RETRY_OF: t.number, **keep}, skip_if_exists=False)
        failed.append(t.number)
    try:
        optuna.storages.fail_stale_trials(study)
    except (RuntimeError, ValueError):  # storages without heartbeats
        pass
    return failed


def build_context(settings: SearchSettings, study_name: str | None = None) -> SearchContext:
    """Load what every trial needs once: the task, the space, the backbone's shape and budget, the data's
    sizes, the rungs (from the top rung's steps) and the study's artifacts folder."""
    settings.validate()
    task = get_task(settings.task)
    space = load_space(settings.space_path())
    if settings.oneshot and space.method != "lor2c":  # before the model and the data are loaded
        raise UserError(f"the one-shot rung scores LoR2C structures; space {space.name!r} is {space.method}",
                        param="oneshot", value=True)
    base = load_backbone(settings.model, task.num_labels, task.is_regression)
    shape = model_shape(base, AdapterSpec("lora", lora=LoRASpec()) if space.method == "lora" else None)
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
    full_steps = planned_steps(settings.train_args({}), n_full)
    fidelity, note = settings.resolve_fidelity(full_steps)
    name = study_name or settings.study_name or default_study_name(settings)
    return SearchContext(settings, task, space, shape, budget, n_full, trivial, trivial_dev, fidelity=fidelity,
                         full_steps=full_steps, fidelity_note=note, out=settings.out_dir(name).resolve())


def check_trials_can_reach_the_top(settings: SearchSettings, ctx: SearchContext) -> None:
    """Before anything is created: a trial count too small for ASHA to promote anything to the top rung,
    with no built-in starting there, would train nothing to pick from."""
    if settings.trials is None or not ctx.fidelity.enabled:
        return
    if settings.builtins_first and startable_builtins(ctx):
        return
    need = rungs_needed(ctx.fidelity)
    if settings.trials < need:
        raise UserError(f"multi-fidelity (rungs {ctx.fidelity.describe()}) needs at "
                        f"least {need} configurations before one reaches the top rung; give more {{param}}, or turn "
                        "multi-fidelity off", param="trials", value=settings.trials)


def prepare_study(settings: SearchSettings, ctx: SearchContext, storage, name: str) -> optuna.Study:
    """Create or open the study and record what ``retrain``, ``export`` and ``show`` need to rebuild the search
    (the one set-up both backends use; they only run trials)."""
    study = open_study(settings, storage, name, ctx.task.primary_metric, budget=ctx.budget, top_rung=ctx.fidelity.top)
    data_dir = resolve_data_dir(settings.data_dir)
    for key, value in {record.BUDGET_PARAMS: ctx.budget,
                       record.TRIVIAL_SCORE: {"selection": ctx.trivial, "dev": ctx.trivial_dev},
                       record.SPACE: ctx.space.name, record.BACKBONE_PARAMS: ctx.shape.backbone_params,
                       record.MODEL_ARG: settings.model, record.DATA_DIR: str(data_dir.resolve()) if data_dir else None,
                       record.SPACE_PATH: str(Path(settings.space_path()).resolve()),
                       record.ARTIFACTS_DIR: str(ctx.out), record.FULL_STEPS: ctx.full_steps,
                       record.RUNG_FRACTIONS: list(ctx.fidelity.fractions)}.items():
        study.set_user_attr(key, value)
    if ctx.fidelity.oneshot:  # before any trial or other worker: they read the super-adapter from the cache
        rung = ctx.oneshot_rung()
        if not rung.cached or record.ONESHOT not in study.user_attrs:
            study.set_user_attr(record.ONESHOT, {"folder": str(rung.folder), "cached": rung.cached,
                                                 "wall_s": rung.train_wall_s, "cpu_s": rung.train_cpu_s,
                                                 "steps": rung.run.steps})
        print(f"one-shot rung: super-adapter {'read from the cache' if rung.cached else 'trained'} ({rung.folder})")
    return study


def run_search(settings: SearchSettings, objective_factory: Callable[[SearchContext], Objective] = Objective,
               on_study_ready: Callable[[optuna.Study], None] | None = None, ctx: SearchContext | None = None,
               require_top: bool = False):
    """Create or resume the study and run trials until ``settings.trials`` are done or the timeout hits.

    ``on_study_ready(study)`` runs once the study exists (the CLI starts its extra worker processes there).
    ``ctx``: a context already built for these settings (the benchmark replays reuse one model and dataset).
    ``require_top``: refuse, before the study exists, a trial count that cannot bring anything to the top rung
    (the headline command does; a study driven step by step need not).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    name = settings.study_name or default_study_name(settings)
    if ctx is None:
        ctx = build_context(settings, name)
    elif ctx.settings is not settings:
        raise ValueError("ctx was built for other settings")
    if require_top:
        check_trials_can_reach_the_top(settings, ctx)
    storage = resolve_storage(settings.storage)
    study = prepare_study(settings, ctx, storage, name)
    retried = fail_orphaned_trials(study)
    if settings.builtins_first:
        queued = enqueue_builtins(study, ctx)
        if queued:
            print(f"trying the built-in configuration(s) {', '.join(queued)} first, at the top rung")
    if ctx.fidelity_note:
        print(ctx.fidelity_note)
    if settings.warm_start:
        n = warm_start(study, settings.warm_start, settings.storage, ctx.space, ctx.shape.num_layers)
        print(f"warm start: queued {n} configuration(s) from {settings.warm_start}")
    if settings.workers > 1:  # each trial decided from a fixed set of earlier ones: the study replays exactly
        study.sampler = OrderedSampler(
            lambda seed: make_sampler(settings.sampler, seed, budget=ctx.budget, top_rung=ctx.fidelity.top),
            workers=settings.workers, seed=settings.seed, fidelity=ctx.fidelity, target=settings.trials)
    if on_study_ready is not None:  # after everything is queued, so every worker sees the same queue
        on_study_ready(study)
    objective = objective_factory(ctx)
    done = trained_configurations(study)
    target = settings.trials
    print(f"study {name!r} in {settings.storage or DEFAULT_STORAGE}: {done} configuration(s) trained"
          f"{f', {len(retried)} interrupted trial(s) re-queued' if retried else ''}; budget "
          f"{format_params(ctx.budget)} params; space {ctx.space.name}; rungs "
          f"{ctx.fidelity.describe()} of the full run ({ctx.full_steps} steps on "
          f"{ctx.n_train_full} examples); "
          f"scored on {'a selection split of the training data' if settings.selection_fraction else 'the dev set'}")
    promotions = Promotions(ctx.fidelity)
    progress = Progress(study, ctx, target, settings.progress)
    stop = _StopRule(target, settings.max_consecutive_failures, promotions, ordered=settings.workers > 1)
    started = time.time()
    try:
        if not stop.finished(study):
            # Over-budget trials are free and not counted, so the trial cap is only a guard.
            study.optimize(failure_recording(objective), n_trials=None if target is None else 20 * target + 20,
                           timeout=settings.timeout, catch=(Exception,), callbacks=[progress, stop])
    finally:
        progress.close()
    study.set_user_attr(record.COST, cost_totals(study))
    return study, ctx, objective, time.time() - started


class _StopRule:
    """A study callback: record the costs, queue ASHA's next promotion, and stop the study once ``target``
    configurations are trained and nothing is queued, or after too many failures in a row."""

    def __init__(self, target: int | None, max_failures: int, promotions: Promotions, ordered: bool = False):
        self.target, self.max_failures, self.promotions = target, max_failures, promotions
        self.failures_in_a_row = 0
        # several workers: promotions and the end are decided by the trials themselves (ordered.py), never here
        self.ordered = ordered

    def finished(self, study: optuna.Study) -> bool:
        """Queue a promotion if one is due; True when nothing is left to do."""
        if self.ordered:
            trials = study.get_trials(deepcopy=False)
            return (self.target is not None and trained_configurations(study) >= self.target
                    and all(t.state.is_finished() for t in trials)
                    and (not self.promotions.fidelity.enabled or next_promotion(trials, self.promotions.fidelity) is None))
        if self.promotions(study) is not None:
            return False
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        return not waiting and self.target is not None and trained_configurations(study) >= self.target

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.failures_in_a_row = self.failures_in_a_row + 1 if trial.state == TrialState.FAIL else 0
        study.set_user_attr(record.COST, cost_totals(study))
        if self.failures_in_a_row >= self.max_failures:
            print(f"stopping: {self.failures_in_a_row} trials failed in a row "
                  f"(last: {trial.user_attrs.get(record.FAIL_REASON, '')})")
            study.stop()
        elif not self.ordered and self.finished(study):
            study.stop()
