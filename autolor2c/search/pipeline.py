"""The headline command as one function: ``search(settings)`` runs the study, measures the seed noise on the
best configuration, picks, trains the pick's seeds, trains the baselines the study cannot hold, writes the
report and charts and uploads them. The CLI, the benchmarks and a notebook all call this.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import optuna


from . import record
from .front import pick_best
from .run import SearchSettings


class NothingTrained(RuntimeError):
    """The search ended with no configuration trained to the top rung: there is nothing to pick."""


@dataclass
class SearchOutcome:
    study: optuna.Study
    out: Path
    picked: optuna.trial.FrozenTrial | None
    pick: dict[str, Any] | None = None             # the pick's runs over seeds (summary)
    best: dict[str, Any] | None = None             # the best trial's runs over seeds (the noise is measured on it)
    noise: dict[str, Any] | None = None
    baselines: list[dict[str, Any]] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)
    wall_s: dict[str, float] = field(default_factory=dict)   # search, seeds, baselines


def search(settings: SearchSettings, *, on_study_ready: Callable[[optuna.Study], None] | None = None,
           after_trials: Callable[[optuna.Study], None] | None = None, run_trials: Callable | None = None,
           baseline_seeds: int = 1) -> SearchOutcome:
    """Run the whole search for ``settings`` and return what it made.

    ``run_trials(settings) -> (study, ctx)`` replaces the Optuna backend (the CLI passes the Ray one);
    ``after_trials(study)`` runs once the trials are done (the CLI waits for its worker processes there);
    ``baseline_seeds`` seeds for every baseline (the product's default 1; the benchmarks use 3).
    Raises ``NothingTrained`` when no configuration reached the top rung.
    """
    from .report import print_front, write_artifacts
    from .retrain import baselines_apart, replace_dir, train_baseline
    from .front import pareto_front
    from .run import run_search
    from .artifacts import upload_study_artifacts

    settings.validate()
    t0 = time.time()
    if run_trials is None:
        study, ctx, _, _ = run_search(settings, on_study_ready=on_study_ready, require_top=True)
    else:
        study, ctx = run_trials(settings)
    if after_trials is not None:
        after_trials(study)
    wall = {"search": time.time() - t0}
    out = ctx.out
    study.set_user_attr(record.ARTIFACTS_DIR, str(out))
    front = pareto_front(study)
    if not front:
        why = _why_nothing(study, ctx)
        write_artifacts(study, ctx, out, None, wall["search"])
        upload_study_artifacts(study, out, settings.storage)
        raise NothingTrained(why)
    print_front(study, ctx.task.primary_metric)
    metric = ctx.task.primary_metric

    t1 = time.time()
    chosen = pick_over_seeds(study, ctx, settings.pick, settings.seeds, settings.progress)
    picked, pick, best, noise = chosen.picked, chosen.pick, chosen.best, chosen.noise
    wall["seeds"] = time.time() - t1
    print(f"picked trial {picked.number} ({settings.pick}): {metric} {picked.values[0]:.4f}, "
          f"{int(picked.values[1]):,} params; over {pick['seeds']} seed(s) dev {pick['dev_mean']:.4f}")
    own = record.adapter_dir(picked)
    if own is not None:  # the pick's adapter is its trial's own model (seed 0): nothing trained again
        replace_dir(own, out / "adapter")

    t2 = time.time()
    baselines: list[dict[str, Any]] = []
    if settings.baselines:
        baselines += builtin_baselines(study, ctx, baseline_seeds, settings.progress)
        cache = out.parent / "baselines"
        for name, spec, plan_train in baselines_apart(ctx):
            baselines.append(train_baseline(ctx, cache, name, spec, plan_train, baseline_seeds, settings.progress))
        study.set_user_attr(record.BASELINES, [{k: v for k, v in b.items() if k != "runs"} for b in baselines])
    wall["baselines"] = time.time() - t2
    if pick is not None:
        study.set_user_attr(record.PICK, {k: v for k, v in pick.items() if k != "runs"})
    paths = write_artifacts(study, ctx, out, picked, wall["search"], pick=pick, best=best, noise=noise,
                            baselines=baselines)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    uploaded = upload_study_artifacts(study, out, settings.storage)
    print(f"uploaded {len(uploaded)} files to the study's artifact store (optuna-dashboard lists them: "
          f"autolor2c dashboard)")
    return SearchOutcome(study, out, picked, pick, best, noise, baselines, paths, wall)


@dataclass
class Chosen:
    """What ``pick_over_seeds`` decided: the pick and the best over their seeds, and the noise (the candidates
    it refuted on the way are ``front.refuted_ties``)."""
    picked: optuna.trial.FrozenTrial
    pick: dict[str, Any]
    best: dict[str, Any]
    noise: dict[str, Any] | None


def pick_over_seeds(study: optuna.Study, ctx, rule: str, seeds: int, progress: bool = False) -> Chosen:
    """Train the best front trial's extra seeds (its noise decides what is tied with it), pick by ``rule``
    and train the pick's seeds; a ``smallest-tied`` pick whose tie does not hold over its own seeds gives
    way to the next candidate, until one holds or the best is left."""
    from .front import pareto_front, pick_trial, practical_margin, record_seed_noise
    from .retrain import train_seeds

    metric = ctx.task.primary_metric
    front = pareto_front(study)
    best_trial = front[pick_best([(t.values[0], t.values[1]) for t in front])]

    def runs_of(t) -> int:
        return seeds_to_hold(study, t.number, seeds)

    if runs_of(best_trial) > 1:
        print(f"measuring the seed noise: trial {best_trial.number} (best {metric}) over {runs_of(best_trial)} seeds")
    best = train_seeds(study, ctx, best_trial, runs_of(best_trial), progress, role="best")
    noise = record_seed_noise(study, best_trial.number, [r["selection"] for r in best["runs"]],
                              practical_margin(metric))
    picked = pick_trial(study, rule)
    while True:
        pick = best if picked.number == best_trial.number else \
            train_seeds(study, ctx, picked, runs_of(picked), progress, role="pick")
        again = pick_trial(study, rule)
        if again.number == picked.number:
            break
        print(f"trial {picked.number} is not tied with the best over {pick['seeds']} seeds (selection {metric} "
              f"{pick['selection_mean']:.4f} against {best['selection_mean']:.4f}): trying trial {again.number}")
        picked = again
    return Chosen(picked, pick, best, noise)


def builtin_baselines(study: optuna.Study, ctx, seeds: int, progress: bool) -> list[dict[str, Any]]:
    """The built-ins the study tried as its first trials, as baselines (their trial is seed 0), over ``seeds``
    seeds or every seed already on record (a refuted pick's seeds sharpen its baseline row)."""
    from .retrain import train_seeds

    out = []
    for name, t in record.builtin_trials(study.get_trials(deepcopy=False)).items():
        out.append({"config": name, "source": f"trial {t.number}",
                    **train_seeds(study, ctx, t, seeds_to_hold(study, t.number, seeds), progress,
                                  role=f"built-in {name}")})
    return out


def seeds_to_hold(study: optuna.Study, number: int, asked: int) -> int:
    """Seeds to report for trial ``number``: what is asked, or more where an earlier step trained them."""
    return max(asked, 1 + len(record.extra_seed_runs(study, number)))


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
