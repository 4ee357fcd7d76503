"""After the trials: the baselines over seeds, the pick over seeds, and more seeds of a trial.

A trial that reached the top rung already *is* the run ``autolor2c train`` makes (seed 0, its adapter kept);
another seed trains the same configuration with the same arguments (``SearchSettings.train_args``) and a
different seed. Seed k is run k of a configuration: it trains with ``--seed`` + k (``trained_seed``), so with
any ``--seed`` no extra seed repeats the trial's run; the cache holds the seeds runs trained with. The
baselines are the built-ins the study tried as trials and those a study cannot express as
trials (the head alone, LoRA, AdaLoRA), over seeds: their seeds are trained once per task, model, data and
training arguments and cached across studies, and their spread is the seed noise the pick uses. The pick then
trains its own seeds (the report compares them with the baselines'), and a tied candidate its seeds until its
tie with the best holds. Everything is scored on the selection split (which chooses checkpoints and picks)
and on the dev set (which chooses nothing).
"""

from __future__ import annotations

import statistics
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

import optuna

from autolor2c.errors import UserError
from autolor2c.train import AdapterSpec, builtin_configs, count_adapter_params, read_config_file, train

from .. import record
from ..front import (pareto_front, pick_best, pick_trial, practical_margin, record_seed_noise, seed_noise,
                     selection_over_seeds)
from ..run import SearchContext, available_cores, plan_to_spec
from ..run.kept_runs import cache_entry, kept_runs_dir, read_runs, seed_record, write_runs
from ..space import TrialPlan

HEAD_ONLY = "head-only"       # the head alone: no adapter, the front's true zero
APART = ("lora",)             # built-ins a lor2c space cannot express: trained apart as baselines


def trial_plan(t: optuna.trial.FrozenTrial) -> TrialPlan:
    if record.PLAN not in t.user_attrs:
        raise UserError(f"trial {t.number} has no recorded plan (not an autolor2c trial)")
    return TrialPlan.from_dict(t.user_attrs[record.PLAN])


def trained_seed(ctx, k: int) -> int:
    """The seed run k of a configuration trains with: the search's own (``--seed``, the trial's run) plus k."""
    return ctx.settings.seed + k


def trial_run(t: optuna.trial.FrozenTrial, metric: str) -> dict[str, Any]:
    """A top-rung trial as seed 0 of its configuration."""
    top = [r for r in t.user_attrs.get(record.RUNGS, []) if r.get("fraction", 1.0) >= 1.0]
    r = top[-1] if top else {}
    return {"seed": 0, "selection": t.values[0], "dev": record.dev_score(t, metric),
            "dev_scores": t.user_attrs.get(record.DEV_SCORES), "params": int(t.values[1]),
            "wall_s": float(r.get("wall_s", t.user_attrs.get(record.COST_S, 0.0))),
            "cpu_s": float(r.get("cpu_s", 0.0)), "n_train": r.get("n_train", t.user_attrs.get(record.N_TRAIN)),
            "trial": t.number}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over seeds (std is None for one seed: nothing was measured)."""
    def ms(key: str) -> tuple[float, float | None]:
        xs = [r[key] for r in runs if r.get(key) is not None]
        if not xs:
            return float("nan"), None
        return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else None

    sel, dev = ms("selection"), ms("dev")
    return {"seeds": len(runs), "selection_mean": sel[0], "selection_std": sel[1], "dev_mean": dev[0],
            "dev_std": dev[1], "params": runs[0]["params"], "wall_s": round(sum(r.get("wall_s", 0.0) for r in runs), 3),
            "cpu_s": round(sum(r.get("cpu_s", 0.0) for r in runs), 3), "n_train": runs[0]["n_train"], "runs": runs}


def _one_run(task, spec: AdapterSpec, args, model_name, data_dir, out_dir) -> dict[str, Any]:
    """One seed in a worker process with one thread (module level: the process pool pickles it)."""
    import os

    import torch

    # train() takes every core unless the thread count is pinned: two such workers on two cores ran each
    # seed 5x slower than one process did (MRPC, this CPU)
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    return seed_record(train(task, spec, args, model_name=model_name, data_dir=data_dir, out_dir=out_dir))


def parallel_workers(n_jobs: int) -> int:
    """Seeds are independent runs: on a CPU, one 1-thread process per core trained two seeds 1.23x as fast as
    one process with both cores, with the same scores (bench/speed/workers.py). One process on a GPU, or
    where the user pinned the threads (OMP_NUM_THREADS)."""
    import os

    import torch

    if n_jobs < 2 or torch.cuda.is_available() or "OMP_NUM_THREADS" in os.environ:
        return 1
    return max(1, min(n_jobs, available_cores()))


def _runs(ctx: SearchContext, jobs: list[tuple[AdapterSpec, dict[str, Any], int, Path | None]],
          progress: bool, free_cores: Callable[[], int] | None = None) -> Iterator[dict[str, Any]]:
    """Train each (spec, plan training keys, seed, folder), in parallel worker processes where that is faster,
    and yield each run in the jobs' order as soon as it and those before it are done: the caller records it
    then, so a search killed (or a run failing) while a later seed trains keeps the seeds that finished.
    ``free_cores()``: how many runs may train at once now (other processes hold the rest of the cores); read
    each time a run ends and every few seconds between."""
    s = ctx.settings
    made = [(spec, s.train_args(plan_train, seed=trained_seed(ctx, seed), progress=progress and len(jobs) == 1), seed,
             folder)
            for spec, plan_train, seed, folder in jobs]
    # with free_cores, a thread of a search still training trials in this process calls: the runs go to worker
    # processes whatever parallel_workers says (the trials pin this process's threads meanwhile)
    workers = parallel_workers(len(made)) if free_cores is None else max(1, min(len(made), available_cores()))
    if workers == 1 and free_cores is None:
        for spec, args, seed, folder in made:
            yield {"seed": seed, **seed_record(train(ctx.task, spec, args, model_name=s.model, data_dir=s.data_dir,
                                                 out_dir=folder))}
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        runs = as_cores_free(lambda job: pool.submit(_one_run, ctx.task, job[0], job[1], s.model, s.data_dir, job[3]),
                             made, lambda: workers if free_cores is None else max(1, min(workers, free_cores())))
        for (_, _, seed, _), r in zip(made, runs):
            yield {"seed": seed, **r}
    finally:  # on a failure, the runs not yet started never start
        pool.shutdown(wait=True, cancel_futures=True)


POLL_S = 5.0   # how often a pool waiting on its runs looks again for a freed core


def as_cores_free(submit: Callable[[Any], Future], jobs: list[Any], limit: Callable[[], int]) -> Iterator[Any]:
    """Submit ``jobs`` in order, at most ``limit()`` running at a time, and yield their results in order; once
    one has failed, no more start."""
    futures: list[Future] = []

    def top_up() -> None:
        if any(f.done() and f.exception() is not None for f in futures):
            return
        while len(futures) < len(jobs) and sum(not f.done() for f in futures) < limit():
            futures.append(submit(jobs[len(futures)]))

    for i in range(len(jobs)):
        top_up()
        while not futures[i].done():
            wait([f for f in futures if not f.done()], timeout=POLL_S, return_when=FIRST_COMPLETED)
            top_up()
        yield futures[i].result()


def seed_runs(study: optuna.Study, t: optuna.trial.FrozenTrial, metric: str) -> list[dict[str, Any]]:
    """Every run of trial ``t``'s configuration so far: the trial (seed 0), then its extra seeds."""
    return [trial_run(t, metric)] + record.extra_seed_runs(study, t.number)


def train_seeds(study: optuna.Study, ctx: SearchContext, t: optuna.trial.FrozenTrial, seeds: int,
                progress: bool = True, role: str = "") -> dict[str, Any]:
    """Bring trial ``t`` to ``seeds`` runs (the trial is seed 0; only the missing seeds train) and return
    their summary. Each extra seed keeps its adapter in ``<out>/retrain/trial<N>-seed<K>/``."""
    todo, finish = _trial_seeds(study, ctx, t, seeds, role)
    _train_all(ctx, todo, progress)
    return finish()


@dataclass
class _Seed:
    """One seed to train, and what records it the moment it finishes (so a killed search keeps it)."""

    job: tuple[AdapterSpec, dict[str, Any], int, Path | None]
    done: Callable[[dict[str, Any]], None]


def _train_all(ctx: SearchContext, todo: list[_Seed], progress: bool,
               free_cores: Callable[[], int] | None = None) -> None:
    """Train ``todo`` in one pool of workers, each seed recorded as it (and those before it) finish."""
    for seed, r in zip(todo, _runs(ctx, [s.job for s in todo], progress, free_cores) if todo else []):
        seed.done(r)


def _trial_seeds(study: optuna.Study, ctx: SearchContext, t: optuna.trial.FrozenTrial, seeds: int, role: str,
                 after: Callable[[], None] | None = None) -> tuple[list[_Seed], Callable[[], dict[str, Any]]]:
    """The seeds trial ``t`` lacks of ``seeds``, each recorded on the study when done (then ``after()``), and
    what summarises the trial's runs once they are."""
    if not record.is_feasible(t):
        raise UserError(f"trial {t.number} did not finish at the top rung within the budget", param="trial",
                        value=t.number)
    plan = trial_plan(t)
    spec = plan_to_spec(plan)
    runs = seed_runs(study, t, ctx.task.primary_metric)

    def done(r: dict[str, Any]) -> None:
        seed = r["seed"]
        if r["params"] != int(t.values[1]):
            raise RuntimeError(f"seed {seed} of trial {t.number} has {r['params']} params, the trial had "
                               f"{int(t.values[1])}: the configuration was not reproduced")
        runs.append(r)
        all_extra = dict(study.user_attrs.get(record.SEED_RUNS, {}))
        all_extra[str(t.number)] = [{k: v for k, v in x.items() if k != "final_structure"} for x in runs[1:]]
        study.set_user_attr(record.SEED_RUNS, all_extra)
        print(f"  trial {t.number}{f' ({role})' if role else ''} seed {seed}: selection {r['selection']:.4f}, "
              f"dev {r['dev']:.4f} ({r['params']:,} params, {r['wall_s']:.0f}s)")
        if after is not None:
            after()

    todo = [_Seed((spec, plan.train, seed, ctx.out / "retrain" / f"trial{t.number}-seed{seed}" if ctx.out else None),
                  done) for seed in range(len(runs), seeds)]
    return todo, lambda: _trial_summary(t, runs[:max(1, seeds)], role)


def _trial_summary(t: optuna.trial.FrozenTrial, runs: list[dict[str, Any]], role: str) -> dict[str, Any]:
    return {"trial": t.number, "role": role, "trial_score": t.values[0], "builtin": record.builtin_of(t),
            **summary(runs)}


# --------------------------------------------------------------------------------------------------
# The pick over seeds
# --------------------------------------------------------------------------------------------------
@dataclass
class Chosen:
    """What ``pick_over_seeds`` decided: the pick and the best over their seeds, and the noise (the candidates
    it refuted on the way are ``front.refuted_ties``)."""
    picked: optuna.trial.FrozenTrial
    pick: dict[str, Any]
    best: dict[str, Any]
    noise: dict[str, Any] | None


def baseline_noise_runs(baselines: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Each baseline's selection scores over its seeds, for the seed noise of the set-up. The head alone is
    left out, whatever its spread: it trains a linear probe on frozen features, whose seeds barely move it
    (often not at all), so it says nothing of an adapter's seed noise and would only shrink the pooled sd."""
    return {b["config"]: [float(r["selection"]) for r in b.get("runs") or [] if r.get("selection") is not None]
            for b in baselines if b["config"] != HEAD_ONLY}


def pick_over_seeds(study: optuna.Study, ctx, rule: str, seeds: int, progress: bool = False,
                    baselines: list[dict[str, Any]] | None = None) -> Chosen:
    """Pick by ``rule`` and train the pick's seeds; a ``smallest-tied`` pick whose tie does not hold over its
    own seeds gives way to the next candidate, until one holds or the best is left.

    The seed noise that decides what is tied with the best is the pooled spread of the cached baselines' seeds
    (``baselines``; without them, the noise the study recorded from them), so the best trains no seed to
    measure it. Only where no baseline has two seeds do the best's own seeds measure it."""
    metric = ctx.task.primary_metric
    margin = practical_margin(metric)
    front = pareto_front(study)
    best_trial = front[pick_best([(t.values[0], t.values[1]) for t in front])]

    def runs_of(t) -> int:
        return seeds_to_hold(study, t.number, seeds)

    known = baseline_noise_runs(baselines) if baselines is not None else \
        (seed_noise(study) or {}).get("baselines") or {}
    noise = record_seed_noise(study, best_trial.number, selection_over_seeds(study, best_trial), margin, known,
                              candidate_seeds=seeds)
    if noise is not None and noise.get("baselines"):
        print(f"seed noise from the cached baseline seeds ({', '.join(noise['baselines'])}): selection {metric} "
              f"sd {noise['std']:.4f}; the best trial {best_trial.number} trains no seed to measure it")
    else:
        if runs_of(best_trial) > 1:
            print(f"measuring the seed noise: trial {best_trial.number} (best {metric}) over "
                  f"{runs_of(best_trial)} seeds")
        best = train_seeds(study, ctx, best_trial, runs_of(best_trial), progress, role="best")
        noise = record_seed_noise(study, best_trial.number, [r["selection"] for r in best["runs"]], margin,
                                  candidate_seeds=seeds)
    picked = pick_trial(study, rule)
    while True:
        pick = train_seeds(study, ctx, picked, runs_of(picked), progress,
                           role="best, the pick" if picked.number == best_trial.number else "pick")
        again = pick_trial(study, rule)
        if again.number == picked.number:
            break
        best_scores = selection_over_seeds(study, best_trial)
        print(f"trial {picked.number} is not tied with the best over {pick['seeds']} seeds (selection {metric} "
              f"{pick['selection_mean']:.4f} against {statistics.fmean(best_scores):.4f} over {len(best_scores)}): "
              f"trying trial {again.number}")
        picked = again
    # the best over the runs it has (seed 0 alone unless it is the pick or a built-in): nothing trains here
    best = pick if picked.number == best_trial.number else \
        _trial_summary(best_trial, seed_runs(study, best_trial, metric), "best")
    return Chosen(picked, pick, best, noise)


def seeds_to_hold(study: optuna.Study, number: int, asked: int) -> int:
    """Seeds to report for trial ``number``: what is asked, or more where an earlier step trained them."""
    return max(asked, 1 + len(record.extra_seed_runs(study, number)))


# --------------------------------------------------------------------------------------------------
# Baselines: the built-ins the study tried, and those trained apart (cached across studies)
# --------------------------------------------------------------------------------------------------
def train_baselines(study: optuna.Study, ctx: SearchContext, seeds: int, progress: bool,
                    free_cores: Callable[[], int] | None = None) -> list[dict[str, Any]]:
    """Every baseline over ``seeds`` seeds, recorded on the study: the built-ins the study tried as trials
    (``builtin_baselines``), then the baselines trained apart (``baselines_apart``); the seeds of both are
    cached beside the study's artifacts folder (``<out>/../baselines/``), so a later search trains none again.

    Every baseline's missing seeds train in one pool, so the workers stay busy from one baseline to the next
    (per baseline, three seeds on two cores left one core idle for a whole run); the head's seeds, the
    cheapest (no adapter in the backbone), go last, so the run left alone at the end of an odd count is short.
    ``free_cores()``: how many seeds may train at once now, while other workers' trials hold the other cores."""
    cache = kept_runs_dir(ctx)
    plans = _builtin_plans(study, ctx, seeds, cache)
    plans += [_apart_plan(ctx, cache, name, spec, plan_train, seeds) for name, spec, plan_train in baselines_apart(ctx)]
    todo = sorted((s for seeds_of, _ in plans for s in seeds_of), key=lambda s: s.job[0].method == "head")
    _train_all(ctx, todo, progress, free_cores)
    baselines = [finish() for _, finish in plans]
    study.set_user_attr(record.BASELINES, [{k: v for k, v in b.items() if k != "runs"} for b in baselines])
    return baselines


def builtin_baselines(study: optuna.Study, ctx, seeds: int, progress: bool,
                      cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """The built-ins the study tried as its first trials, as baselines, over ``seeds`` seeds or every seed
    already on record (a refuted pick's seeds sharpen its baseline row).

    The trial is seed 0 (the study's own run: its point on the front and its adapter); seeds 1 on come from
    ``cache_dir`` where an earlier search with the same key trained them, else train here and go into it.
    Either way they are recorded as the trial's extra seeds, so the pick rule sees them too."""
    plans = _builtin_plans(study, ctx, seeds, cache_dir)
    _train_all(ctx, [s for seeds_of, _ in plans for s in seeds_of], progress)
    return [finish() for _, finish in plans]


def _builtin_plans(study: optuna.Study, ctx, seeds: int,
                   cache_dir: Path | None) -> list[tuple[list[_Seed], Callable[[], dict[str, Any]]]]:
    """Per built-in trial: its missing seeds (cached as each finishes) and what makes its baseline row."""
    plans = []
    for name, t in record.builtin_trials(study.get_trials(deepcopy=False)).items():
        want = seeds_to_hold(study, t.number, seeds)
        entry, after = None, None
        if cache_dir is not None:
            plan = trial_plan(t)
            entry = cache_entry(ctx, cache_dir, name, plan_to_spec(plan), plan.train)
            _adopt_cached_seeds(study, ctx, t, name, entry, want)
            after = partial(_cache_extra_seeds, study, ctx, entry, name, t.number)
            after()  # seeds already on record (a refuted pick's) go into the cache too
        todo, summarise = _trial_seeds(study, ctx, t, want, f"built-in {name}", after)
        source = f"trial {t.number}" + ("; seeds cached" if entry else "")
        plans.append((todo, lambda summarise=summarise, name=name, source=source:
                      {"config": name, "source": source, **summarise()}))
    return plans


def _cache_extra_seeds(study: optuna.Study, ctx, entry: tuple[Path, dict[str, Any]], name: str, number: int) -> None:
    write_runs(entry, name, [{**r, "seed": trained_seed(ctx, r["seed"])} for r in record.extra_seed_runs(study, number)])


def _cached_by_run(ctx, entry: tuple[Path, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The cached runs by run number (the cache holds the seed each trained with)."""
    return {r["seed"] - trained_seed(ctx, 0): {**r, "seed": r["seed"] - trained_seed(ctx, 0)} for r in read_runs(entry)
            if r["seed"] >= trained_seed(ctx, 0)}


def _adopt_cached_seeds(study: optuna.Study, ctx, t: optuna.trial.FrozenTrial, name: str,
                        entry: tuple[Path, dict[str, Any]], want: int) -> None:
    """Record the cached seeds 1..want-1 of built-in trial ``t`` as its extra seeds where it lacks them. An
    entry whose runs count other params than the trial is stale (the configuration is not the one cached):
    refused whole."""
    cached = {k: r for k, r in _cached_by_run(ctx, entry).items() if 1 <= k < want}
    if not cached:
        return
    if any(int(r["params"]) != int(t.values[1]) for r in cached.values()):
        print(f"  built-in {name}: the cached seeds in {entry[0]} count other params than trial {t.number}: "
              "not used")
        return
    runs = {r["seed"]: r for r in record.extra_seed_runs(study, t.number)}
    added = []
    for seed in range(1, want):  # seeds stay contiguous from 1: train_seeds trains the missing ones after them
        if seed not in runs and seed in cached:
            runs[seed] = cached[seed]
            added.append(seed)
        if seed not in runs:
            break
    if added:
        all_extra = dict(study.user_attrs.get(record.SEED_RUNS, {}))
        all_extra[str(t.number)] = [runs[k] for k in sorted(runs)]
        study.set_user_attr(record.SEED_RUNS, all_extra)
        print(f"  built-in {name} (trial {t.number}): seed(s) {', '.join(map(str, added))} from the cache "
              f"({entry[0].name})")


def head_only_spec() -> AdapterSpec:
    return AdapterSpec("head")


def baselines_apart(ctx: SearchContext) -> list[tuple[str, AdapterSpec, dict[str, Any]]]:
    """(name, spec, training overrides) of the baselines the study does not train as trials: the head alone,
    PEFT's AdaLoRA sized so that what it trains fits the budget, and the built-ins of another method than
    the space's that fit the budget."""
    from autolor2c.train import AdaLoRASpec

    out = [(HEAD_ONLY, head_only_spec(), {})]
    if ctx.space.method != "adalora":  # what a PEFT user picks to fit ranks to a budget
        out.append(("adalora", AdapterSpec("adalora", adalora=AdaLoRASpec.for_budget(ctx.budget, ctx.shape)), {}))
    for name in APART:
        if name not in builtin_configs():
            continue
        spec, plan_train = read_config_file(name)
        if spec.method == ctx.space.method or count_adapter_params(spec, ctx.shape)["peak"] > ctx.budget:
            continue
        out.append((name, spec, plan_train))
    return out


def train_baseline(ctx: SearchContext, cache_dir: Path, name: str, spec: AdapterSpec, plan_train: dict[str, Any],
                   seeds: int = 1, progress: bool = True) -> dict[str, Any]:
    """A baseline with ``seeds`` seeds (at least one), each run cached in ``cache_dir`` (one-off per task,
    model, data and args)."""
    todo, finish = _apart_plan(ctx, cache_dir, name, spec, plan_train, seeds)
    _train_all(ctx, todo, progress)
    return finish()


def _apart_plan(ctx: SearchContext, cache_dir: Path, name: str, spec: AdapterSpec, plan_train: dict[str, Any],
                seeds: int) -> tuple[list[_Seed], Callable[[], dict[str, Any]]]:
    """A baseline's seeds missing from the cache (each cached as it finishes) and what makes its row."""
    entry = cache_entry(ctx, cache_dir, name, spec, plan_train)
    by_seed = _cached_by_run(ctx, entry)

    def done(r: dict[str, Any]) -> None:
        by_seed[r["seed"]] = r
        print(f"  baseline {name} seed {r['seed']}: selection {r['selection']:.4f}, dev {r['dev']:.4f} "
              f"({r['params']:,} params, {r['wall_s']:.0f}s)")
        write_runs(entry, name, [{**r, "seed": trained_seed(ctx, r["seed"])}])

    todo = [_Seed((spec, plan_train, seed, None), done) for seed in range(max(1, seeds)) if seed not in by_seed]
    return todo, lambda: {"config": name, "source": "trained apart (cached)",
                          **summary([by_seed[k] for k in range(max(1, seeds))])}
