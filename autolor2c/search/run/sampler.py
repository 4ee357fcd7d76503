"""The default sampler: TPE on a ParEGO scalarisation that sees every trained trial, pruned ones included.

Why a wrapper: Optuna's samplers learn nothing from a multi-objective study's PRUNED trials (``Trial.report``
is single-objective, so a pruned trial carries no score; TPE ranks them all alike, GP ignores them), and
they count only finished trials towards their random start-up. Under successive halving two thirds of the
trials are pruned, so the model never saw most of the data.

What the inner sampler gets instead is a *view*: a single-objective in-memory study in which
- each configuration that was trained is one trial; its value is a ParEGO scalarisation (Knowles 2006,
  as in SMAC3's multi-objective Hyperband) of (rung score, params / budget) with weights drawn afresh for
  each suggestion; a configuration that reached the top rung is COMPLETE, one that stopped lower is PRUNED
  with its rung values as intermediate values, so TPE ranks it the way Optuna ranks pruned trials in a
  single-objective study (rung reached first, then value);
- an over-budget configuration keeps its constraint and no score (TPE puts infeasible trials in their own
  group; no made-up 0.0 enters the score model);
- trials running elsewhere are pruned trials without values (the constant-liar idea: never "good").
The random start-up counts trained configurations only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState, create_trial

from .. import record

RHO = 0.05  # ParEGO's augmentation term


class RungAwareSampler(BaseSampler):
    """Wraps a single-objective sampler (TPE by default) and shows it the view described above."""

    def __init__(self, budget: float, top_rung: int, *, seed: int | None = None, n_startup_trials: int = 8,
                 inner: BaseSampler | None = None):
        self.budget = float(budget)
        self.top_rung = int(top_rung)
        self.n_startup_trials = n_startup_trials
        self._rng = np.random.RandomState(seed)
        self._random = RandomSampler(seed=seed)
        # constant_liar off: it writes to the study it is given, and running trials are in the view already
        self._inner = inner or TPESampler(multivariate=True, group=True, constant_liar=False, n_startup_trials=0,
                                          seed=seed)
        self._view_for: tuple[int, optuna.Study] | None = None
        self._trained_for: tuple[int, int] | None = None  # (trial number, configurations trained before it)

    # ---- the view ----------------------------------------------------------------------------------
    def n_trained(self, study: optuna.Study) -> int:
        return record.trained_configurations(study.get_trials(deepcopy=False, states=record.DONE_STATES))

    def build_view(self, study: optuna.Study, current: FrozenTrial | None = None) -> optuna.Study:
        trials = [t for t in study.get_trials(deepcopy=False)
                  if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
                  and (current is None or t.number != current.number)]
        chains = record.configuration_chains(trials)
        rungs = {root: record.chain_rungs(chain) for root, chain in chains.items()}
        scores = [s for r in rungs.values() for s, _ in r.values()]
        lo, hi = (min(scores), max(scores)) if scores else (0.0, 1.0)
        span = hi - lo if hi > lo else 1.0
        w = self._rng.dirichlet([1.0, 1.0])

        def scalar(score: float, params: float) -> float:  # ParEGO's augmented Chebyshev, lower is better
            f = np.array([(hi - score) / span, params / self.budget])
            return float(np.max(w * f) + RHO * np.sum(w * f))

        view = optuna.create_study(storage=optuna.storages.InMemoryStorage(), direction="minimize")
        frozen = []
        for root, chain in chains.items():
            first = chain[0]
            if not first.distributions:
                continue
            base = dict(params=first.params, distributions=first.distributions)
            violation = first.constraints.get("budget", 0.0)
            if record.is_over_budget(first) or violation > 0:
                frozen.append(create_trial(state=TrialState.COMPLETE, value=0.0, constraints={"budget": violation},
                                           **base))
            elif rungs[root]:
                r = rungs[root]
                top = max(r)
                if top >= self.top_rung and any(t.state == TrialState.COMPLETE for t in chain):
                    frozen.append(create_trial(state=TrialState.COMPLETE, value=scalar(*r[top]),
                                               constraints={"budget": violation}, **base))
                else:
                    frozen.append(create_trial(state=TrialState.PRUNED, constraints={"budget": violation},
                                               intermediate_values={k: scalar(*v) for k, v in r.items()}, **base))
            elif any(t.state == TrialState.RUNNING for t in chain):
                frozen.append(create_trial(state=TrialState.PRUNED, **base))
        view.add_trials(frozen)
        return view

    def _view(self, study: optuna.Study, trial: FrozenTrial) -> optuna.Study:
        if self._view_for is None or self._view_for[0] != trial.number:
            self._view_for = (trial.number, self.build_view(study, trial))
        return self._view_for[1]

    # ---- BaseSampler -------------------------------------------------------------------------------
    def _in_startup(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        # once per trial: each of its parameters asks, and counting re-reads every trial
        if self._trained_for is None or self._trained_for[0] != trial.number:
            self._trained_for = (trial.number, self.n_trained(study))
        return self._trained_for[1] < self.n_startup_trials

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        if self._in_startup(study, trial):
            return {}
        return self._inner.infer_relative_search_space(self._view(study, trial), trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if not search_space:
            return {}
        return self._inner.sample_relative(self._view(study, trial), trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if self._in_startup(study, trial):
            return self._random.sample_independent(study, trial, param_name, param_distribution)
        return self._inner.sample_independent(self._view(study, trial), trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._view_for = self._trained_for = None

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles the searcher; the cached view holds a lock
        return {**self.__dict__, "_view_for": None, "_trained_for": None}

    def reseed_rng(self) -> None:
        self._rng = np.random.RandomState()
        self._random.reseed_rng()
        self._inner.reseed_rng()
