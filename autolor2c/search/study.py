"""The study: create or resume it, its sampler, ASHA's promotions, the built-ins tried first, warm start,
orphan recovery, progress, and the front and pick read off it.

The search sees a model only through a ``ModelShape`` and exact parameter counts.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import TrialState

# group=True, set_metric_names and fail_stale_trials are "experimental" in Optuna: we rely on them knowingly.
warnings.filterwarnings("ignore", category=ExperimentalWarning)

from autolor2c.errors import UserError
from autolor2c.tasks import get_task, load_task_data, resolve_data_dir, trivial_score
from autolor2c.train import (AdapterSpec, LoRASpec, TrainArgs, builtin_configs, count_adapter_params,
                             load_backbone, model_label, model_shape, planned_steps, read_config_file)

from . import record
from .budget import format_params, parse_budget
from .fidelity import RUNGS_ATTR, Fidelity, next_promotion  # noqa: F401
from .objective import Objective, SearchContext, failure_recording, plan_to_spec  # noqa: F401
from .optuna_internals import WORKER_ATTR, fail_trial, frozen_trial, queued_params, set_worker, worker_of  # noqa: F401
from .pareto import front_indices, hypervolume, pick_best, pick_knee, pick_smallest_tied, tied_with_best
from .sampler import PROMOTED_FROM_ATTR, RungAwareSampler, configuration_chains
from .settings import DEFAULT_STORAGE, PICKS, SAMPLERS, SearchSettings, rungs_needed  # noqa: F401
from .space import SearchSpace, TrialPlan, default_space_path, load_space  # noqa: F401
from .storage import resolve_storage  # noqa: F401

DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
# What a user would set by hand, tried first when the space can express them (the rest are baselines).
BUILTINS = ("lor2c", "sharelor2c", "imlor2c", "lora")
_failure_recording = failure_recording  # the Ray backend's name for it


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
is_feasible = record.is_feasible


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
    pts, out, elapsed, configs = [], [], 0.0, 0
    for n, t in enumerate(done, 1):
        elapsed += float(t.user_attrs.get("cost_s", 0.0))
        if record.promoted_from(t) is None and record.is_trained(t):
            configs += 1  # what --trials counts: a promotion continues a configuration
        if is_feasible(t):
            pts.append((t.values[0], t.values[1]))
        out.append({"trial": t.number, "n": n, "configurations": configs, "cost_s": round(elapsed, 3),
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
    if pick == "smallest-tied":
        best = pick_best(pts)
        noise = _noise_on(study, front[best])
        if noise is None:
            return front[best]
        return front[pick_smallest_tied(pts, best, noise["mean"], noise["threshold"])]
    raise UserError(f"choose one of {', '.join(PICKS)}", param="pick", value=pick)


SEED_NOISE_ATTR = "seed_noise"


def _noise_on(study: optuna.Study, t: optuna.trial.FrozenTrial) -> dict[str, Any] | None:
    """The seed noise if it was measured on trial ``t`` (else nothing is known to tie with it)."""
    noise = seed_noise(study)
    return noise if noise is not None and noise.get("trial") == t.number else None


def tied_with_the_best(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The front trials within the measured seed noise of the best (the best alone without it)."""
    front = pareto_front(study)
    if not front:
        return []
    pts = [(t.values[0], t.values[1]) for t in front]
    best = pick_best(pts)
    noise = _noise_on(study, front[best])
    if noise is None:
        return [front[best]]
    return [front[i] for i in tied_with_best(pts, best, noise["mean"], noise["threshold"])]


def seed_noise(study: optuna.Study) -> dict[str, Any] | None:
    """The seed noise measured on the best trial's configuration (``record_seed_noise``), or None."""
    return study.user_attrs.get(SEED_NOISE_ATTR)


def record_seed_noise(study: optuna.Study, trial: int, scores: list[float]) -> dict[str, Any] | None:
    """Record the best configuration's selection scores over seeds: their mean, standard deviation and the
    tie threshold the ``smallest-tied`` pick uses. Needs two seeds or more."""
    import statistics

    from .pareto import tie_threshold

    if len(scores) < 2:
        return None
    std = statistics.stdev(scores)
    noise = {"trial": trial, "seeds": len(scores), "mean": statistics.fmean(scores), "std": std,
             "threshold": tie_threshold(std, len(scores))}
    study.set_user_attr(SEED_NOISE_ATTR, noise)
    return noise


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
            keep = {k: t.user_attrs[k] for k in (PROMOTED_FROM_ATTR, record.START_RUNG, record.BUILTIN)
                    if k in t.user_attrs}
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
def build_context(settings: SearchSettings, study_name: str | None = None) -> SearchContext:
    """Load what every trial needs once: the task, the space, the backbone's shape and budget, the data's
    sizes, the rungs (from the top rung's steps) and the study's artifacts folder."""
    settings.validate()
    task = get_task(settings.task)
    space = load_space(settings.space_path())
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


def builtin_params(space: SearchSpace, num_layers: int, name: str) -> dict[str, Any] | None:
    """The space parameters that make built-in configuration ``name`` exactly (its adapter and learning rate),
    or None when the space cannot express it."""
    spec, plan_train = read_config_file(name)
    if spec.method != space.method or spec.method != "lor2c":
        return None
    cfg = spec.lor2c
    spans = cfg.resolved_spans(num_layers)
    lr = plan_train.get("learning_rate", TrainArgs.learning_rate)
    lengths = {b - a + 1 for a, b in spans}
    if len(lengths) != 1 or any(spans[k + 1][0] != spans[k][1] + 1 for k in range(len(spans) - 1)):
        return None
    cand = {f: getattr(cfg, f) for f in ("rank", "alpha", "dropout", "share_a", "merge_count", "merge_criterion",
                                          "sfs_k", "max_merge_span", "inject_count", "inject_alpha")}
    cand.update(bypass_from=spans[0][0], bypass_to=spans[-1][1], span_length=lengths.pop(), learning_rate=lr)
    try:
        plan = space.fixed_plan(cand, num_layers, strict=False)
    except (UserError, ValueError):
        return None
    want, got = _structure_dict(cfg, num_layers), _structure_dict(plan.adapter, num_layers)
    if got != want or plan.train.get("learning_rate", TrainArgs.learning_rate) != lr or plan.clamped:
        return None
    used = set(space.sampled_keys(cand, num_layers))
    return {k: v for k, v in cand.items() if k in used}


def _structure_dict(cfg, num_layers: int) -> dict[str, Any]:
    """A LoR2C config as what it trains: fields that only matter for merges or injections are left out
    when there are none."""
    d = dict(cfg.to_dict(), spans=cfg.resolved_spans(num_layers))
    if not d["merge_count"]:
        for k in ("merge_criterion", "sfs_k", "max_merge_span"):
            d.pop(k)
    if not d["inject_count"] and not d["injected"]:
        for k in ("inject_rank", "inject_alpha", "inject_targets"):
            d.pop(k)
    return d


def startable_builtins(ctx: SearchContext) -> dict[str, dict[str, Any]]:
    """Built-in name -> space parameters, for the built-ins the space can express and the budget fits."""
    out = {}
    for name in BUILTINS:
        if name not in builtin_configs():
            continue
        params = builtin_params(ctx.space, ctx.shape.num_layers, name)
        if params is None or count_adapter_params(read_config_file(name)[0], ctx.shape)["peak"] > ctx.budget:
            continue
        out[name] = params
    return out


def enqueue_builtins(study: optuna.Study, ctx: SearchContext) -> list[str]:
    """Queue the built-ins the space can express and the budget fits as the study's first trials, at the top
    rung (each trial is then that built-in's baseline run). Only on a study with no trials yet."""
    if study.get_trials(deepcopy=False):
        return []
    queued = startable_builtins(ctx)
    for name, params in queued.items():
        study.enqueue_trial(params, user_attrs={record.BUILTIN: name, record.START_RUNG: ctx.fidelity.top})
    return list(queued)


def check_trials_can_reach_the_top(settings: SearchSettings, ctx: SearchContext) -> None:
    """Before anything is created: a trial count too small for ASHA to promote anything to the top rung,
    with no built-in starting there, would train nothing to pick from."""
    if settings.trials is None or not ctx.fidelity.enabled:
        return
    if settings.builtins_first and startable_builtins(ctx):
        return
    need = rungs_needed(ctx.fidelity)
    if settings.trials < need:
        raise UserError(f"multi-fidelity (rungs {', '.join(f'{f:.3g}' for f in ctx.fidelity.fractions)}) needs at "
                        f"least {need} configurations before one reaches the top rung; give more {{param}}, or turn "
                        "multi-fidelity off", param="trials", value=settings.trials)


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
            self.bar.set_postfix_str(f"best {self.ctx.task.primary_metric}={best:.4f} hv={hv:.4f} (vs input-blind) "
                                     f"top-rung={len(feas)}")

    def finished(self) -> bool:
        """Queue a promotion if one is due; True when nothing is left to do."""
        if queue_promotion(self.study, self.ctx.fidelity) is not None:
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


def prepare_study(settings: SearchSettings, ctx: SearchContext, storage, name: str) -> optuna.Study:
    """Create or open the study and record what ``retrain``, ``export`` and ``show`` need to rebuild the search
    (the one set-up both backends use; they only run trials)."""
    study = open_study(settings, storage, name, ctx.task.primary_metric, budget=ctx.budget, top_rung=ctx.fidelity.top)
    data_dir = resolve_data_dir(settings.data_dir)
    for key, value in {"budget_params": ctx.budget, "trivial_score": {"selection": ctx.trivial, "dev": ctx.trivial_dev},
                       "space": ctx.space.name, "backbone_params": ctx.shape.backbone_params,
                       "model_arg": settings.model, "data_dir": str(data_dir.resolve()) if data_dir else None,
                       "space_path": str(Path(settings.space_path()).resolve()),
                       "artifacts_dir": str(ctx.out), "full_steps": ctx.full_steps,
                       "rungs": list(ctx.fidelity.fractions)}.items():
        study.set_user_attr(key, value)
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
          f"{format_params(ctx.budget)} params; space {ctx.space.name}; rungs "
          f"{', '.join(f'{f:.3g}' for f in ctx.fidelity.fractions)} of the full run ({ctx.full_steps} steps on "
          f"{ctx.n_train_full} examples); "
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

