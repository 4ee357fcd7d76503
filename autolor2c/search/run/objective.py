"""One Optuna trial: suggest a configuration, refuse it untrained if it is over budget, train it at its rung,
and record the result. A trial at the top rung trains the run ``autolor2c train`` makes and keeps its model.
"""

from __future__ import annotations

import gc
import threading
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import optuna

from autolor2c.lor2c import ModelShape
from autolor2c.tasks import TaskSpec
from autolor2c.train import AdapterSpec, LoRASpec, TrainResult, count_adapter_params, train

from .. import record
from ..fidelity import Fidelity
from ..space import SearchSpace, TrialPlan
from .kept_runs import cache_entry, keep_top_run, kept_runs_dir, kept_top_run, seed_record
from .optuna_internals import beat, frozen_trial, set_worker
from .owner import BEAT_S, this_process
from .settings import SearchSettings


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
    n_train_full: int          # training rows of the top rung
    trivial: float = 0.0       # the input-blind score on the selection split
    trivial_dev: float = 0.0   # the same on the dev set
    fidelity: Fidelity = Fidelity.off()
    full_steps: int = 0        # optimiser steps of the top rung
    fidelity_note: str | None = None
    out: Path | None = None    # the study's artifacts folder (top-rung trials save their model under it)
    oneshot: Any = None        # the one-shot rung (fidelity.OneShotRung), once its super-adapter is ready

    def oneshot_rung(self):
        """The one-shot rung, its super-adapter trained or read from the cache on first use."""
        if self.oneshot is None:
            from ..fidelity import OneShotRung

            self.oneshot = OneShotRung(self, progress=self.settings.progress)
        return self.oneshot


class Objective:
    """Trains one sampled configuration at one fidelity rung; never trains one over budget.

    A new configuration starts at rung 0 (a built-in enqueued first starts at the top); a queued promotion
    continues a configuration at its ``start_rung``. Below the top rung the trial ends PRUNED (paused, see
    fidelity/rungs.py); at the top rung its (score, params) are the study's objective values, its dev scores are
    recorded, and its adapter is saved. An over-budget configuration ends PRUNED at once, untrained, with
    its exact count and the budget constraint: no score is made up for it.
    """

    def __init__(self, ctx: SearchContext, trainer: Callable[..., TrainResult] = train):
        self.ctx = ctx
        self.trainer = trainer
        self.trained: list[int] = []  # trial numbers actually trained (tests assert on this)

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        set_worker(trial, this_process())
        with beating(trial):
            return self._run(trial)

    def _run(self, trial: optuna.Trial) -> tuple[float, float]:
        ctx, s = self.ctx, self.ctx.settings
        if trial.user_attrs.get(record.SURPLUS):  # several workers: the study has its trials (ordered.py)
            trial.study.stop()
            raise optuna.TrialPruned("surplus: the study has its trials; this worker stops")
        plan = ctx.space.suggest(trial, ctx.shape.num_layers)
        spec = plan_to_spec(plan)
        counts = count_adapter_params(spec, ctx.shape)
        trial.set_user_attr(record.PLAN, plan.to_dict())
        trial.set_user_attr(record.PLANNED_PARAMS, counts)
        violation = counts["peak"] - ctx.budget
        trial.set_constraint("budget", float(violation))
        if violation > 0:
            trial.set_user_attr(record.FEASIBLE, False)
            trial.set_user_attr(record.TRAINED, False)
            raise optuna.TrialPruned(f"over budget by {violation} params: not trained")
        trial.set_user_attr(record.FEASIBLE, True)
        trial.set_user_attr(record.TRAINED, True)
        self.trained.append(trial.number)
        rungs: list[dict[str, Any]] = []
        source = record.promoted_from(trial)
        rung = min(record.start_rung(trial), ctx.fidelity.top)
        if source is not None:  # the configuration's earlier rungs, for reading this trial alone
            src = frozen_trial(trial.study, source)
            rungs = [dict(r, from_trial=r.get("from_trial", src.number)) for r in src.user_attrs.get(record.RUNGS, [])
                     if r["rung"] < rung]
        frac = ctx.fidelity.fractions[rung]
        top = rung == ctx.fidelity.top
        if frac == 0.0 and not top:  # the one-shot rung: scored inside the super-adapter, nothing trained
            r = ctx.oneshot_rung().score(plan.adapter)
            rungs.append({"rung": rung, "fraction": 0.0, "n_train": 0, "steps": 0, "score": r["score"],
                          "params": counts["final"], "wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "gpu_s": 0.0})
            trial.set_user_attr(record.RUNGS, rungs)
            trial.set_user_attr(record.COST_S, r["wall_s"])
            trial.set_user_attr(record.CPU_S, r["cpu_s"])
            trial.set_user_attr(record.GPU_S, 0.0)
            trial.set_user_attr(record.SCORES, r["scores"])
            trial.set_user_attr(record.STOPPED_AT_RUNG, rung)
            raise optuna.TrialPruned("paused at the one-shot rung until promoted")
        args = s.train_args(plan.train, n_full=ctx.n_train_full, fraction=frac)
        kwargs: dict[str, Any] = dict(model_name=s.model, data_dir=s.data_dir)
        folder = record.trial_folder(ctx.out, trial.number) if top and ctx.out is not None else None
        if folder is not None:
            kwargs["out_dir"] = folder
        # a built-in's top-rung run depends on the set-up alone: kept across searches, like the baselines' seeds
        name = record.builtin_of(trial)
        kept = cache_entry(ctx, kept_runs_dir(ctx), name, spec, plan.train) if name and folder is not None else None
        result = kept_top_run(kept, args.seed, folder) if kept is not None else None
        spent = (0.0, 0.0, 0.0)
        if result is not None:
            trial.set_user_attr(record.KEPT_RUN, kept[0].name)
            print(f"built-in {name} (trial {trial.number}): its run kept by an earlier search ({kept[0].name}), "
                  "not trained again")
        else:
            result = self.trainer(ctx.task, spec, args, **kwargs)
            spent = (result.wall_time_s, result.cpu_time_s, result.gpu_time_s)
            if kept is not None:
                keep_top_run(kept, name, args.seed, folder, seed_record(result))
        rungs.append({"rung": rung, "fraction": frac, "n_train": result.n_train, "steps": result.steps,
                      "score": result.primary_score, "params": result.trainable_params,
                      "wall_s": spent[0], "cpu_s": spent[1], "gpu_s": spent[2]})
        trial.set_user_attr(record.RUNGS, rungs)
        trial.set_user_attr(record.COST_S, round(spent[0], 3))
        trial.set_user_attr(record.CPU_S, round(spent[1], 3))
        trial.set_user_attr(record.GPU_S, round(spent[2], 3))
        trial.set_user_attr(record.FINAL_STRUCTURE, result.final_structure)
        trial.set_user_attr(record.HISTORY, _compact_history(result.history))
        trial.set_user_attr(record.SCORES, result.scores)
        trial.set_user_attr(record.N_TRAIN, result.n_train)
        if not top:
            trial.set_user_attr(record.STOPPED_AT_RUNG, rung)
            raise optuna.TrialPruned(f"paused at rung {rung} (fraction {frac:.3g}) until promoted")
        trial.set_user_attr(record.DEV_SCORES, result.dev_scores)
        trial.set_user_attr(record.TRAIN_ARGS, {k: v for k, v in result.train_args.items() if k != "progress"})
        if folder is not None and (folder / "adapter").is_dir():
            trial.set_user_attr(record.ADAPTER_DIR, str((folder / "adapter").resolve()))
        return float(result.primary_score), float(result.trainable_params)


@contextmanager
def beating(trial: optuna.Trial):
    """While the block runs, record every ``BEAT_S`` seconds that this process lives, on a journal
    file: it has no heartbeats, so without beats another host could not tell a dead search's RUNNING trial
    (and a resumed one would wait for it forever). RDB storages run Optuna's heartbeats instead."""
    if not isinstance(trial.storage, optuna.storages.JournalStorage):
        yield
        return
    beat(trial)
    stop = threading.Event()

    def keep_beating() -> None:
        while not stop.wait(BEAT_S):
            try:
                beat(trial)
            except Exception:  # a storage that fails now fails the trial's own writes too, which say why
                return

    thread = threading.Thread(target=keep_beating, name=f"beat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:  # before the trial is told: a beat on a finished trial is refused
        stop.set()
        thread.join()


def failure_recording(objective: Objective) -> Callable[[optuna.Trial], tuple[float, float]]:
    """The objective, recording why a trial failed on the trial before Optuna marks it FAIL and goes on."""
    def wrapped(trial: optuna.Trial):
        try:
            return objective(trial)
        except optuna.TrialPruned:
            raise
        except Exception as e:  # study.optimize(catch=...) marks it FAIL and goes on
            reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:500]
            trial.set_user_attr(record.FAIL_REASON, reason)
            trial.set_user_attr(record.FAIL_TRACEBACK, traceback.format_exc()[-2000:])
            raise
        finally:
            # a trained model's memory back before the next trial (Optuna's gc_after_trial), but not after an
            # over-budget draw: a collection with torch loaded costs ~0.5 s, more than the draw itself
            if trial.user_attrs.get(record.TRAINED):
                gc.collect()
    return wrapped
