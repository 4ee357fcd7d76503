"""The headline command as one function: ``search(settings)`` reads top to bottom as the stages of a search,
one call each: validate the settings, open the study and run the trials (run/), train the baselines (their
cached seeds are the seed noise), pick over seeds, write the report and charts, upload them (results/). The
CLI, the benchmarks and a notebook all call this.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import optuna

from . import record
from .front import pareto_front
from .results import (parallel_workers, pick_over_seeds, print_front, train_baselines, upload_study_artifacts,
                      write_artifacts)
from .run import (SearchSettings, available_cores, build_context, default_study_name, run_search,
                  threads_per_worker)
from .run.kept_runs import replace_dir


POLL_S = 5.0   # how often the search looks for a core that its trial workers have freed


class NothingTrained(RuntimeError):
    """The search ended with no configuration trained to the top rung: there is nothing to pick."""


@dataclass
class SearchOutcome:
    study: optuna.Study
    out: Path
    picked: optuna.trial.FrozenTrial | None
    pick: dict[str, Any] | None = None             # the pick's runs over seeds (summary)
    best: dict[str, Any] | None = None             # the best trial's runs (seed 0 alone unless it is the pick)
    noise: dict[str, Any] | None = None
    baselines: list[dict[str, Any]] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)
    wall_s: dict[str, float] = field(default_factory=dict)   # search, baselines, seeds


class Helpers(Protocol):
    """Worker processes training trials of the same study beside this one (the CLI's ``--workers``)."""

    def release(self) -> None:
        """This process's trials are done: it takes every core again."""

    def busy_cores(self) -> int:
        """The cores the helpers still train trials on."""

    def wait(self) -> float:
        """Until every helper is done; returns when the last one was seen to end."""


def search(settings: SearchSettings, *, on_study_ready: Callable[[optuna.Study], None] | None = None,
           helpers: Helpers | None = None, run_trials: Callable | None = None,
           baseline_seeds: int | None = None) -> SearchOutcome:
    """Run the whole search for ``settings`` and return what it made.

    ``run_trials(settings) -> (study, ctx)`` replaces the Optuna backend (the CLI passes the Ray one);
    ``helpers``: the worker processes that ``on_study_ready`` started (the CLI's); once a worker has no more
    trials, the baselines' seeds train on the cores it frees while the others finish theirs;
    ``baseline_seeds`` overrides ``settings.baseline_seeds`` (seeds of every baseline, cached across searches).
    Raises ``NothingTrained`` when no configuration reached the top rung. A helper worker (``settings.worker``
    > 0, started by the first) returns once its trials are done: the first worker alone reports.
    """
    # 1. validate
    settings.validate()
    seeds = settings.baseline_seeds if baseline_seeds is None else baseline_seeds

    # 2. open the study and run the trials (the baselines' seeds may start on cores they leave free at the end)
    t0 = time.time()
    beside = _BaselinesBesideTrials.for_search(settings, helpers, seeds) if run_trials is None else None
    try:
        if run_trials is None:
            study, ctx, _, _ = run_search(settings, on_study_ready=beside.watching(on_study_ready) if beside else
                                          on_study_ready, require_top=True, ctx=beside.ctx if beside else None)
        else:
            study, ctx = run_trials(settings)
    except BaseException:
        if beside is not None:
            beside.stop()
        raise
    trials_end = time.time()
    if helpers is not None:
        if beside is not None:
            beside.own_trials_done()
        helpers.release()
        trials_end = max(trials_end, helpers.wait())
    early = beside.finish() if beside is not None else None
    wall: dict[str, float] = {"trials": trials_end - t0}
    if early is not None:  # the baselines count what they added after the last trial
        wall["baselines_beside_trials"] = round(max(0.0, min(beside.ended, trials_end) - beside.started), 3)
        wall["baselines"] = max(0.0, beside.ended - trials_end)
    out = ctx.out
    if settings.worker > 0:
        # a helper worker only runs trials: the first worker reports, and a helper that wrote the report, the
        # verdict or the study's stage times would overwrite the first's
        return SearchOutcome(study, out, None, wall_s=wall)
    study.set_user_attr(record.ARTIFACTS_DIR, str(out))
    if not pareto_front(study):
        why = _why_nothing(study, ctx)
        write_artifacts(study, ctx, out, None, wall["trials"])
        upload_study_artifacts(study, out, settings.storage)
        raise NothingTrained(why)
    metric = ctx.task.primary_metric
    print_front(study, metric)

    # 3. baselines: their seeds are trained once per set-up (cached), and their spread is the seed noise
    baselines = early or []
    if settings.baselines and early is None:  # off (--no-baselines): no stage, so the report claims no one-off
        t1 = time.time()
        baselines = train_baselines(study, ctx, seeds, settings.progress)
        wall["baselines"] = time.time() - t1

    # 4. pick over seeds
    t2 = time.time()
    chosen = pick_over_seeds(study, ctx, settings.pick, settings.seeds, settings.progress, baselines)
    picked, pick, best, noise = chosen.picked, chosen.pick, chosen.best, chosen.noise
    wall["seeds"] = time.time() - t2
    print(f"picked trial {picked.number} ({settings.pick}): {metric} {picked.values[0]:.4f}, "
          f"{int(picked.values[1]):,} params; over {pick['seeds']} seed(s) dev {pick['dev_mean']:.4f}")
    own = record.adapter_dir(picked)
    if own is not None:  # the pick's adapter is its trial's own model (seed 0): nothing trained again
        replace_dir(own, out / "adapter")

    # 5. report
    if pick is not None:
        study.set_user_attr(record.PICK, {k: v for k, v in pick.items() if k != "runs"})
    # the baselines' stage is the one-off (cached for the next search on this set-up): the cost is told apart
    study.set_user_attr(record.STAGE_WALL, {stage: round(s, 3) for stage, s in wall.items()})
    paths = write_artifacts(study, ctx, out, picked, wall["trials"], pick=pick, best=best, noise=noise,
                            baselines=baselines)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")

    # 6. upload
    uploaded = upload_study_artifacts(study, out, settings.storage)
    print(f"uploaded {len(uploaded)} files to the study's artifact store (optuna-dashboard lists them: "
          f"autolor2c dashboard)")
    return SearchOutcome(study, out, picked, pick, best, noise, baselines, paths, wall)


def _why_nothing(study: optuna.Study, ctx) -> str:
    trials = study.get_trials(deepcopy=False)
    trained = [t for t in trials if record.is_trained(t)]
    failed = [t for t in trials if t.state.name == "FAIL"]
    if not trials:
        return "no trial ran (the timeout ended the search first?)"
    if not trained and not failed:
        return (f"no configuration of the space fits the budget {ctx.settings.budget}: raise the budget "
                "or narrow the space")
    if failed and not any(t.state.name == "COMPLETE" for t in trials):
        reason = failed[-1].user_attrs.get(record.FAIL_REASON, "see the log")
        return f"every trained trial failed (last: {reason})"
    return (f"no configuration reached the top rung ({len(trained)} trained at lower rungs): train at least "
            f"{max(3, int(ctx.fidelity.eta ** ctx.fidelity.top))} configurations or turn multi-fidelity off")


class _BaselinesBesideTrials:
    """The baselines' seeds on the cores the trial workers free at the end of a search: once a worker has no
    trial left (a helper ended, or this process's trials are done) a core idles until the last trial ends,
    and a top-rung run can take half an hour. The baselines need no trial but the built-ins' (their point on
    the front), so a thread starts them then, one seed process per free core, more as the last trials end."""

    @classmethod
    def for_search(cls, settings: SearchSettings, helpers: Helpers | None, seeds: int):
        """For the first of several workers that trains baselines in worker processes (not where one process
        trains them in turn: two runs in one process would share its random state), else None."""
        if helpers is None or settings.worker > 0 or not settings.baselines or parallel_workers(2) < 2:
            return None
        ctx = build_context(settings, settings.study_name or default_study_name(settings))
        return cls(ctx, helpers, threads_per_worker(settings.workers), seeds, settings.progress)

    def __init__(self, ctx, helpers: Helpers, own_cores: int, seeds: int, progress: bool):
        self.ctx, self.helpers, self.own_cores, self.seeds, self.progress = ctx, helpers, own_cores, seeds, progress
        self.training_own = True              # this process still trains trials
        self.lock, self.halt = threading.Lock(), threading.Event()
        self.thread: threading.Thread | None = None
        self.started = self.ended = 0.0
        self.result: list[dict[str, Any]] | None = None
        self.error: BaseException | None = None

    def free_cores(self) -> int:
        return available_cores() - self.helpers.busy_cores() - (self.own_cores if self.training_own else 0)

    def watching(self, on_study_ready: Callable[[optuna.Study], None] | None) -> Callable[[optuna.Study], None]:
        """``on_study_ready``, then the thread that starts the seeds once a core is free."""
        def ready(study: optuna.Study) -> None:
            if on_study_ready is not None:
                on_study_ready(study)
            self.thread = threading.Thread(target=self._run, args=(study,), name="baselines-beside-trials",
                                           daemon=True)
            self.thread.start()
        return ready

    def _run(self, study: optuna.Study) -> None:
        while not self.halt.wait(POLL_S):
            with self.lock:  # decided under the lock: finish() knows for sure whether the seeds started
                if self.halt.is_set() or self.free_cores() < 1 or not pareto_front(study):
                    continue
                self.started = time.time()
                break
        else:
            return
        print("a core is free of trials while others still train: the baselines' seeds start on it")
        try:
            self.result = train_baselines(study, self.ctx, self.seeds, self.progress, free_cores=self.free_cores)
        except BaseException as e:  # noqa: BLE001  (raised again in the search's thread)
            self.error = e
        self.ended = time.time()

    def own_trials_done(self) -> None:
        self.training_own = False

    def stop(self) -> None:
        with self.lock:
            self.halt.set()

    def finish(self) -> list[dict[str, Any]] | None:
        """The baselines if they started beside the trials (waiting for them), else None: they train after."""
        self.stop()
        if not self.started:
            return None
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.result
