"""What is read off a study: its front, hypervolume and pick, the seed noise the pick uses, and its costs."""

from __future__ import annotations

import statistics
from typing import Any

import optuna
from optuna.trial import TrialState

from autolor2c.errors import UserError

from .. import record
from .stats import pooled_sd
from .pareto import PICKS, front_indices, hypervolume, pick_best, pick_knee, pick_smallest_tied, recheck_threshold, tie_holds, \
    tie_threshold, \
    tied_with_best


def trained_configurations(study: optuna.Study) -> int:
    """Configurations trained so far (a promotion continues one; an over-budget one is not trained)."""
    return record.trained_configurations(study.get_trials(deepcopy=False, states=record.DONE_STATES))


def feasible_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if record.is_feasible(t)]


def pareto_front(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    trials = feasible_trials(study)
    idx = front_indices([(t.values[0], t.values[1]) for t in trials])
    return [trials[i] for i in idx]


def study_hypervolume(study: optuna.Study, budget: int, score_floor: float = 0.0) -> float:
    return hypervolume([(t.values[0], t.values[1]) for t in feasible_trials(study)], budget, score_floor)


def hypervolume_history(study: optuna.Study, budget: int, score_floor: float = 0.0) -> list[dict[str, float]]:
    """Hypervolume after each finished trial (in order of completion)."""
    done = [t for t in study.get_trials(deepcopy=False) if t.state in (*record.DONE_STATES, TrialState.FAIL)]
    done.sort(key=lambda t: (t.datetime_complete or t.datetime_start or 0, t.number))
    pts, out, elapsed, configs = [], [], 0.0, 0
    for n, t in enumerate(done, 1):
        elapsed += record.cost_s(t)
        if record.promoted_from(t) is None and record.is_trained(t):
            configs += 1  # what --trials counts: a promotion continues a configuration
        if record.is_feasible(t):
            pts.append((t.values[0], t.values[1]))
        out.append({"trial": t.number, "n": n, "configurations": configs, "cost_s": round(elapsed, 3),
                    "hypervolume": hypervolume(pts, budget, score_floor)})
    return out


def pick_trial(study: optuna.Study, pick: str = "best", trial: int | None = None) -> optuna.trial.FrozenTrial:
    """Trial number ``trial`` if given (it must be finished and feasible), else the front's ``pick``: the
    ``best`` score, the ``knee``, or the ``smallest-tied`` (fewest params within the seed noise of the best,
    less the candidates whose tie did not hold over their own seeds: ``refuted_ties``)."""
    if trial is not None:
        matches = [t for t in study.get_trials(deepcopy=False) if t.number == trial]
        if not matches:
            raise UserError(f"no such trial in study {study.study_name!r}", param="trial", value=trial)
        t = matches[0]
        if not record.is_feasible(t):
            raise UserError(f"it is {t.state.name.lower()}{' and over budget' if record.is_over_budget(t) else ''}"
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
        _, best, noise, refuted = _ties(study)
        if noise is None:
            return front[best]
        return front[pick_smallest_tied(pts, best, noise["mean"], noise["threshold"], refuted)]
    raise UserError(f"choose one of {', '.join(PICKS)}", param="pick", value=pick)


def _noise_on(study: optuna.Study, t: optuna.trial.FrozenTrial) -> dict[str, Any] | None:
    """The seed noise if it was measured on trial ``t`` (else nothing is known to tie with it)."""
    noise = seed_noise(study)
    return noise if noise is not None and noise.get("trial") == t.number else None


def tied_with_the_best(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The front trials within the measured seed noise of the best (the best alone without it)."""
    front, best, noise, refuted = _ties(study)
    if not front:
        return []
    if noise is None:
        return [front[best]]
    pts = [(t.values[0], t.values[1]) for t in front]
    return [front[i] for i in tied_with_best(pts, best, noise["mean"], noise["threshold"], refuted)]


def refuted_ties(study: optuna.Study) -> set[int]:
    """Front trials tied with the best on their first seed whose tie did not hold over their own seeds: a
    first seed tied by luck (the front keeps the luckiest seeds) is caught here, not in the shipped model."""
    front, _, _, refuted = _ties(study)
    return {front[i].number for i in refuted}


def selection_over_seeds(study: optuna.Study, t: optuna.trial.FrozenTrial) -> list[float]:
    """Trial ``t``'s selection score at every seed run so far (the trial is seed 0)."""
    return [t.values[0]] + [float(r["selection"]) for r in record.extra_seed_runs(study, t.number)]


def _ties(study: optuna.Study) -> tuple[list[optuna.trial.FrozenTrial], int, dict[str, Any] | None, set[int]]:
    """The front, the best's index on it, the seed noise measured on the best (None: nothing ties), and the
    indices of the front points tied on their first seed that their own seeds refuted (``pareto.tie_holds``)."""
    front = pareto_front(study)
    if not front:
        return [], -1, None, set()
    pts = [(t.values[0], t.values[1]) for t in front]
    best = pick_best(pts)
    noise = _noise_on(study, front[best])
    if noise is None:
        return front, best, None, set()
    # the best may be its first run alone (the noise came from the baselines): the front keeps the luckiest
    # first runs, so checking against it leans to the best, the side a wrong tie would not ship
    best_scores = selection_over_seeds(study, front[best])
    margin = noise.get("margin", 0.01)
    refuted = {i for i in tied_with_best(pts, best, noise["mean"], noise["threshold"])
               if i != best and not tie_holds(selection_over_seeds(study, front[i]), best_scores, margin,
                                              external_noise(noise, record.builtin_of(front[best])))}
    return front, best, noise, refuted


def seed_noise(study: optuna.Study) -> dict[str, Any] | None:
    """The seed noise the pick rule uses (``record_seed_noise``), or None."""
    return study.user_attrs.get(record.SEED_NOISE)


NOISE_FROM_BASELINES = "cached baseline seeds"
NOISE_FROM_BEST = "the best trial's seeds"


def record_seed_noise(study: optuna.Study, trial: int, scores: list[float], margin: float = 0.01,
                      baselines: dict[str, list[float]] | None = None,
                      candidate_seeds: int = 1) -> dict[str, Any] | None:
    """Record the seed noise the pick rule uses, with the best trial's selection scores (``scores``: its runs
    so far, the trial first). The noise is the pooled spread of ``baselines`` (name -> selection scores over
    seeds; those with two or more count), the set-up's noise known before the pick, else of ``scores``
    themselves. Records the best's mean, the sd and its degrees of freedom, its source, the threshold that
    makes a front point a candidate on its first seed (``pareto.recheck_threshold`` where a candidate is
    rechecked over ``candidate_seeds`` >= 2 seeds, else ``tie_threshold``), and the practical ``margin`` its own
    seeds must then show it within (``pareto.tie_holds``). None where neither has two runs."""
    pooled = {name: xs for name, xs in (baselines or {}).items() if len(xs) >= 2}
    if pooled:
        std, df = pooled_sd(*pooled.values())
        source = NOISE_FROM_BASELINES
    elif len(scores) >= 2:
        std, df, source = statistics.stdev(scores), len(scores) - 1, NOISE_FROM_BEST
    else:
        return None
    threshold = recheck_threshold(std, df, len(scores), candidate_seeds, margin) if candidate_seeds >= 2 \
        else tie_threshold(std, len(scores))
    noise = {"trial": trial, "seeds": len(scores), "mean": statistics.fmean(scores), "std": std, "df": df,
             "source": source, "threshold": threshold, "margin": margin, "candidate_seeds": candidate_seeds}
    if pooled:
        noise["baselines"] = {name: [float(x) for x in xs] for name, xs in sorted(pooled.items())}
    study.set_user_attr(record.SEED_NOISE, noise)
    return noise


def external_noise(noise: dict[str, Any] | None, exclude: str | None = None) -> tuple[float, int] | None:
    """(sd, df) of the baselines' seeds a tie check pools with its own sides, less baseline ``exclude`` (the
    best's own built-in: its seeds are already a side); None where the noise is the best's own seeds."""
    if not noise or noise.get("source") != NOISE_FROM_BASELINES:
        return None
    sd, df = pooled_sd(*(xs for name, xs in noise.get("baselines", {}).items() if name != exclude))
    return None if sd is None else (sd, df)


def cost_totals(study: optuna.Study) -> dict[str, float]:
    trials = study.get_trials(deepcopy=False)
    by_state: dict[str, int] = {}
    for t in trials:
        by_state[t.state.name] = by_state.get(t.state.name, 0) + 1
    infeasible = sum(1 for t in trials if record.is_over_budget(t))
    return {
        "trials": len(trials), **{f"n_{k.lower()}": v for k, v in sorted(by_state.items())},
        "n_infeasible": infeasible,
        "wall_s": round(sum(record.cost_s(t) for t in trials), 3),
        "cpu_s": round(sum(float(t.user_attrs.get(record.CPU_S, 0.0)) for t in trials), 3),
        "gpu_s": round(sum(float(t.user_attrs.get(record.GPU_S, 0.0)) for t in trials), 3),
    }


