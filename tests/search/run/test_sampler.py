"""The default sampler (sampler.py): TPE on a ParEGO view that learns from pruned trials' rung scores."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from autolor2c.search import record
from autolor2c.search.run import RungAwareSampler


# --------------------------------------------------------------------------------------------------
# The sampler learns from pruned trials
# --------------------------------------------------------------------------------------------------
def _paused_study(n: int, with_rungs: bool) -> optuna.Study:
    """n configurations of x in [0, 1], all paused at rung 0 (PRUNED) with score 1 - |x - 0.8|."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    rng = np.random.default_rng(0)
    for x in rng.uniform(0, 1, n):
        rungs = [{"rung": 0, "score": 1 - abs(x - 0.8), "params": 1000.0}] if with_rungs else []
        study.add_trial(create_trial(state=TrialState.PRUNED, params={"x": float(x)},
                                     distributions={"x": FloatDistribution(0, 1)},
                                     user_attrs={record.RUNGS: rungs, "trained": True, "feasible": True},
                                     constraints={"budget": -1.0}))
    return study


def _suggestions(study: optuna.Study, k: int = 30) -> np.ndarray:
    xs = []
    for _ in range(k):
        t = study.ask()
        xs.append(t.suggest_float("x", 0, 1))
        study.tell(t, state=TrialState.FAIL)  # not a result: the view stays the 40 paused trials
    return np.array(xs)


def test_sampler_learns_from_the_rung_scores_of_pruned_trials():
    informed = _paused_study(40, with_rungs=True)
    informed.sampler = RungAwareSampler(budget=10_000, top_rung=1, seed=0, n_startup_trials=8)
    xs = _suggestions(informed)
    # TPE drew from around the best rung scores (x near 0.8), not uniformly (mean 0.5, 43% within 0.15)
    assert np.mean(np.abs(xs - 0.8) < 0.15) > 0.7, xs
    # the same trials without rung scores teach it nothing about x
    blind = _paused_study(40, with_rungs=False)
    blind.sampler = RungAwareSampler(budget=10_000, top_rung=1, seed=0, n_startup_trials=8)
    assert np.mean(np.abs(_suggestions(blind) - 0.8) < 0.15) < 0.6


def test_view_has_no_made_up_scores_and_start_up_counts_trained_configurations():
    study = _paused_study(5, with_rungs=True)
    study.add_trial(create_trial(state=TrialState.PRUNED, params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)},
                                 user_attrs={"trained": False, "feasible": False}, constraints={"budget": 500.0}))
    sampler = RungAwareSampler(budget=10_000, top_rung=1, seed=0, n_startup_trials=8)
    assert sampler.n_trained(study) == 5  # the over-budget one is not a trained configuration
    view = sampler.build_view(study)
    over = [t for t in view.trials if t.constraints.get("budget", 0) > 0]
    assert len(over) == 1  # TPE keeps infeasible trials in their own group: their value is never ranked
    paused = [t for t in view.trials if t.state == TrialState.PRUNED]
    assert len(paused) == 5 and all(set(t.intermediate_values) == {0} for t in paused)
