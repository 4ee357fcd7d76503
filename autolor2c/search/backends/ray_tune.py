"""The same search through Ray Tune: ``Tuner`` + ``OptunaSearch`` (metric and mode lists) on the same
Optuna storage, so ``autolor2c dashboard`` shows Ray searches too.

How the pieces map: OptunaSearch asks the study for a trial (the built-ins and promotions queued first, as
in the Optuna backend) and our define-by-run function suggests the space on it. Each Ray trial runs the
same ``Objective`` on that Optuna trial (re-opened from the storage in the worker), which sets the budget
constraint, so multi-fidelity rungs, promotion, failure records and cost accounting are identical. Ray's
schedulers take one metric, so promotion stays our own successive halving, running on top of Ray: a trial
that stops below the top rung reports its rung score marked ``pruned``, and the worker ends it PRUNED.

A killed driver is resumed with Ray's restore (``Tuner.restore``): the Optuna trials its workers left
RUNNING are marked failed (interrupted), and the Ray trials Tune re-runs take their parameters again on
new Optuna trials (``reopen_trial``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from autolor2c.errors import UserError

from .. import record
from ..fidelity import queue_promotion
from ..front import cost_totals, trained_configurations
from ..run import (Objective, SearchSettings, build_context, check_trials_can_reach_the_top, create_running_trial,
                   default_study_name, enqueue_builtins, fail_orphaned_trials, fail_trial, failure_recording,
                   frozen_trial, live_trial, make_sampler, prepare_study, resolve_storage, sampler_seed, set_worker,
                   this_process, worker_of)
from ..space import load_space

TRIAL_NUMBER_KEY = "autolor2c_trial_number"
_CONTEXT_CACHE: dict[str, Any] = {}


def _worker_context(settings: SearchSettings):
    key = repr(settings.identity()) + repr(settings.data_dir) + repr(settings.model)
    if key not in _CONTEXT_CACHE:
        _CONTEXT_CACHE.clear()
        _CONTEXT_CACHE[key] = build_context(settings, settings.study_name or default_study_name(settings))
    return _CONTEXT_CACHE[key]


class _DefineByRun:
    """Suggests the space on the trial OptunaSearch asked for (a class: Ray pickles its searcher)."""

    def __init__(self, space_path: str, num_layers: int):
        self.space_path, self.num_layers = space_path, num_layers

    def __call__(self, ot_trial: optuna.Trial) -> dict[str, Any]:
        # The driver owns the trial until a worker takes it: a killed driver leaves it to be failed on resume.
        set_worker(ot_trial, this_process())
        load_space(self.space_path).suggest(ot_trial, self.num_layers)
        return {TRIAL_NUMBER_KEY: ot_trial.number}


def _trainable(config: dict[str, Any], settings: SearchSettings, storage_url: str, study_name: str,
               metric: str) -> None:
    from ray import tune

    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(max(1, int(float(os.environ.get("AUTOLOR2C_TRIAL_CPUS", "1")))))
    ctx = _worker_context(settings)
    study = optuna.load_study(study_name=study_name, storage=resolve_storage(storage_url, heartbeat=False))
    trial, is_retry, recorded = reopen_trial(study, int(config[TRIAL_NUMBER_KEY]))
    if trial is None:  # finished before a driver kill: report its record again (Tune wants the metrics)
        tune.report(_recorded_result(recorded, metric))
        return
    try:
        score, params = failure_recording(Objective(ctx))(trial)
    except optuna.TrialPruned:
        # Paused below the top rung, or over budget. Tune wants the metrics in a result, and Optuna must not
        # take them as objective values: this worker ends the trial PRUNED itself (OptunaSearch's later tell
        # on a finished trial is refused with a warning), then queues ASHA's next promotion.
        study.tell(trial, state=TrialState.PRUNED)
        queue_promotion(study, ctx.fidelity)
        tune.report(_recorded_result(frozen_trial(study, trial.number), metric))
        return
    except Exception:
        if is_retry:
            study.tell(trial, state=TrialState.FAIL)
        raise
    if is_retry:  # OptunaSearch only knows the interrupted trial: this worker finishes its retry
        study.tell(trial, [score, params])
    tune.report({metric: score, "trainable_params": params})


def _recorded_result(t: FrozenTrial, metric: str) -> dict[str, Any]:
    """A finished Optuna trial as a Tune result: its values when COMPLETE; else its last rung score (nan if
    none: over budget or failed) and planned params, marked so Optuna does not take them as values."""
    if t.state == TrialState.COMPLETE:
        return {metric: t.values[0], "trainable_params": t.values[1]}
    rungs = t.user_attrs.get(record.RUNGS) or []
    return {metric: rungs[-1]["score"] if rungs else float("nan"),
            "trainable_params": float(record.planned_params(t).get("final", float("nan"))),
            "pruned": t.state == TrialState.PRUNED, "failed": t.state == TrialState.FAIL}


def reopen_trial(study: optuna.Study, number: int) -> tuple[optuna.Trial | None, bool, FrozenTrial]:
    """The Optuna trial a (possibly restored) Ray trial runs on, whether it is a retry, and the record.

    Tune's restore re-runs every Ray trial its last checkpoint did not see finish. Its Optuna trial may be
    RUNNING (re-opened as is), marked FAIL as interrupted by the resumed driver (its parameters re-run on a
    new trial, as the Optuna backend does), or already finished before the kill (None: nothing to run, the
    record is reported again so the requested count is still reached).
    """
    recorded = frozen_trial(study, number)
    if not recorded.state.is_finished():
        return live_trial(study, number), False, recorded
    if recorded.state == TrialState.FAIL and str(recorded.user_attrs.get(record.FAIL_REASON, "")).startswith("interrupted"):
        # RUNNING, so no study.ask() in the driver can take it first (an enqueued WAITING trial could be).
        template = optuna.trial.create_trial(state=TrialState.RUNNING, params=recorded.params,
                                             distributions=recorded.distributions,
                                             user_attrs={"retry_of": recorded.number})
        return create_running_trial(study, template), True, recorded
    return None, False, recorded


def _experiment_name(study_name: str, k: int) -> str:
    return study_name if k <= 1 else f"{study_name}-{k}"


def _close_stopped(study: optuna.Study, results) -> None:
    """After ``fit`` no trial of this experiment runs any more, but Tune's time budget leaves some Optuna trials
    RUNNING: the ones it stopped (their workers killed) and ones OptunaSearch asked for that never started
    (still owned by this driver). They are failed here, with the reason, rather than left for a later resume."""
    ours = {int(r.config[TRIAL_NUMBER_KEY]) for r in results if TRIAL_NUMBER_KEY in (r.config or {})}
    driver = this_process()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.number in ours or worker_of(t) == driver:
            fail_trial(study, t, "stopped by Ray Tune before it finished (its time budget)")


def _absolute_url(url: str) -> str:
    """Ray workers run in other folders: file-based storages need absolute paths."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        return "sqlite:///" + str(Path(url[len("sqlite:///"):]).resolve())
    if url.startswith("journal:"):
        return "journal:" + str(Path(url[len("journal:"):]).resolve())
    if url.endswith((".log", ".journal")) and "://" not in url:
        return str(Path(url).resolve())
    return url


def init_ray(ray_address: str | None = None, num_cpus: int | None = None, cpus_per_trial: float = 1.0) -> None:
    """Start a local Ray instance (or join the cluster at ``ray_address``) for the trials, unless this process
    has one already (then the trials run on it as they are)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=ray_address, num_cpus=num_cpus if ray_address is None else None,
                 include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {"AUTOLOR2C_TRIAL_CPUS": str(cpus_per_trial),
                                           "TOKENIZERS_PARALLELISM": "false"}})


def run_search_ray(settings: SearchSettings, ray_address: str | None = None, cpus_per_trial: float = 1.0,
                   gpus_per_trial: float = 0.0, max_concurrent: int = 2, num_cpus: int | None = None):
    """The search's trials through Ray Tune (``Tuner`` + ``OptunaSearch``) on the same study set-up as the
    Optuna backend; returns ``(study, ctx)``, as ``pipeline.search``'s ``run_trials`` expects. A killed driver
    resumes with ``Tuner.restore``."""
    try:
        from ray import tune
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise UserError("the Ray backend needs Ray Tune: pip install -e '.[ray]'") from None

    storage_url = _absolute_url(settings.storage_url())
    if storage_url == "memory":
        raise UserError("the Ray backend needs a persistent storage (sqlite, postgresql, journal)", param="storage",
                        value=storage_url)
    name = settings.study_name or default_study_name(settings)
    ctx = build_context(settings, name)
    check_trials_can_reach_the_top(settings, ctx)
    storage = resolve_storage(storage_url, heartbeat=False)
    study = prepare_study(settings, ctx, storage, name)
    study.set_user_attr("backend", "ray")
    if settings.builtins_first:
        enqueue_builtins(study, ctx)
    if ctx.fidelity_note:
        print(ctx.fidelity_note)
    metric = ctx.task.primary_metric
    exp_dir = ctx.out / "ray"

    def n_done() -> int:  # trained configurations; a queued promotion is work still to do
        waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        return trained_configurations(study) - waiting

    # Trials a killed driver's workers left RUNNING are over, whether or not Tune checkpointed them.
    gone = fail_orphaned_trials(study, requeue=False)
    if settings.trials is not None and n_done() >= settings.trials:
        return study, ctx
    init_ray(ray_address, num_cpus, cpus_per_trial)
    trainable = tune.with_parameters(_trainable, settings=settings, storage_url=storage_url, study_name=name,
                                     metric=metric)
    trainable = tune.with_resources(trainable, {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    started = time.time()
    # Tune experiments of this study: <study>, <study>-2, ...; counted in the study, so a resume finds the last.
    started_n = int(study.user_attrs.get("ray_experiments", 0))
    restore_path = exp_dir / _experiment_name(name, started_n)
    if (started_n > int(study.user_attrs.get("ray_experiments_finished", 0)) and restore_path.is_dir()
            and tune.Tuner.can_restore(str(restore_path))):
        print(f"resuming the Ray experiment in {restore_path}"
              + (f" ({len(gone)} interrupted trial(s) marked failed)" if gone else ""))
        _close_stopped(study, tune.Tuner.restore(str(restore_path), trainable=trainable, resume_unfinished=True,
                                                 resume_errored=False, restart_errored=False).fit())
        study.set_user_attr("ray_experiments_finished", started_n)

    def n_finished() -> int:  # monotonic, unlike n_done (a queued promotion lowers it)
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))

    # A new Tune experiment for whatever is still missing: a larger --trials than the finished experiment's,
    # trials that failed, or a queued promotion. It stops when a whole experiment finishes nothing, like the
    # Optuna backend stops on failures in a row.
    while True:
        done, finished = n_done(), n_finished()
        remaining = None if settings.trials is None else settings.trials - done
        left_s = None if settings.timeout is None else settings.timeout - (time.time() - started)
        if (remaining is not None and remaining <= 0) or (left_s is not None and left_s <= 0):
            break
        k = int(study.user_attrs.get("ray_experiments", 0)) + 1
        study.set_user_attr("ray_experiments", k)
        searcher = OptunaSearch(space=_DefineByRun(settings.space_path(), ctx.shape.num_layers),
                                metric=[metric, "trainable_params"], mode=["max", "min"],
                                sampler=make_sampler(settings.sampler,
                                                     sampler_seed(settings, len(study.get_trials(deepcopy=False))),
                                                     budget=ctx.budget,
                                                     top_rung=ctx.fidelity.top),
                                study_name=name, storage=storage)
        results = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=ConcurrencyLimiter(searcher, max_concurrent=max_concurrent),
                                        num_samples=-1 if remaining is None else remaining, time_budget_s=left_s),
            run_config=tune.RunConfig(name=_experiment_name(name, k), storage_path=str(exp_dir),
                                      verbose=1 if settings.progress else 0),
        ).fit()
        _close_stopped(study, results)
        study.set_user_attr("ray_experiments_finished", k)
        if remaining is None or n_finished() == finished:
            break
    study = optuna.load_study(study_name=name, storage=resolve_storage(storage_url))
    study.set_user_attr(record.COST, cost_totals(study))
    return study, ctx
