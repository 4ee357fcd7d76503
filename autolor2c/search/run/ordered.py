"""Several workers, one reproducible study (``--workers W``).

With W processes on one study, what a sampler sees and which promotions ASHA queues depend on which trials
happen to have finished, so two runs of the same search differ. Here every fresh trial n is decided from a
fixed set instead: the trials numbered below a cutoff, once all of them have finished (the worker waits), with
the trials from the cutoff to n shown as pending (the constant-liar view: their parameters, no result), and a
sampler seeded by (seed, n). The cutoff (``cutoff``) leaves L trials that train above it, those over the budget
or surplus not counted (they take no time), and L (``ordered_lag``) is W - 1 times the lowest rung's trials
that cost one top-rung trial, so a worker rarely waits on a long run. Its decision, in ASHA's order:
1. a promotion due on that set (``next_promotion``, promotions claimed by any trial below n excluded): the
   trial continues that configuration (its parameters fixed, ``promoted_from``, ``start_rung``);
2. else, while fewer than ``--trials`` new configurations are trained below n (the pending ones counted as if
   they will succeed), a new configuration;
3. else, once every trial below n has finished, still no promotion is due and ``--trials`` have succeeded, the
   trial is surplus: it trains nothing and stops its worker. Each worker process ends on one, so a study
   finished by W processes ends on W of them. This last wait skips a promotion to the top rung still training
   (``decides_nothing``): its result cannot change the decision, and it is the longest run of a study.
A trial taken from the queue (the built-ins, a retried one) has its parameters already; the sampler, asked for
any it lacks, waits and answers the same way. Waiting costs time: a worker idles while a trial below the
cutoff is still training; that, and a sampler that sees L fewer results, is the price of a study that
replays exactly.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import optuna
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState, create_trial

from .. import record
from ..fidelity import Fidelity, next_promotion
from .optuna_internals import fix_starting_params, last_beat, queued_params, set_starting_user_attr, worker_of
from .owner import is_gone

POLL_S, MAX_POLL_S = 0.05, 2.0  # a long wait (a top-rung run) polls the storage rarely: it reads every trial
# What a pending trial shows the sampler: fixed once it has decided (all written before ``trained``).
_PENDING_ATTRS = (record.PROMOTED_FROM, record.START_RUNG, record.BUILTIN, record.FEASIBLE, record.TRAINED,
                  record.SURPLUS)


def decided(t: FrozenTrial) -> bool:
    """A trial's parameters and kind are fixed: it has finished, or it has chosen its configuration and
    recorded whether it trains (``trained``, written after its parameters, budget constraint and
    ``feasible``), or it is surplus."""
    return t.state.is_finished() or record.TRAINED in t.user_attrs or record.SURPLUS in t.user_attrs


def _gone(t: FrozenTrial) -> bool:
    """A RUNNING trial of a dead process (it never finishes; waiting for it would hang)."""
    return t.state == TrialState.RUNNING and is_gone(worker_of(t), last_beat(t))


def ordered_lag(workers: int, fidelity: Fidelity) -> int:
    """How many trials a worker may run ahead of the oldest one still training: W - 1 times
    the trials of the lowest real rung that cost what one top-rung trial costs (1 / its fraction; eta more
    with the one-shot rung, whose trials take seconds), so that a worker keeps training short trials while
    another trains a long one instead of idling. Fixed by the settings, so the study still replays."""
    if workers <= 1:
        return 0
    real = [f for f in fidelity.fractions if f > 0]
    ratio = max(1, round(1 / real[0])) * (round(fidelity.eta) if fidelity.oneshot else 1)
    return (workers - 1) * ratio


def cutoff(trials: Sequence[FrozenTrial], n: int, lag: int) -> int:
    """The number below which trial ``n``'s fixed set lies: the trials from it to n - 1 hold ``lag`` that train
    (all decided). One that does not train (over the budget, surplus) takes no time, so it does not count: a
    worker would otherwise idle early behind a long run while the other finished a window of instant trials."""
    if lag <= 0:
        return n
    trains = {t.number: bool(t.user_attrs.get(record.TRAINED)) for t in trials}
    held = 0
    for m in range(n - 1, -1, -1):
        held += trains.get(m, True)
        if held >= lag:
            return m
    return 0


def decides_nothing(t: FrozenTrial, top: int) -> bool:
    """A promotion to the top rung: it measures only a top-rung score, which no promotion reads, it is no new
    configuration, and its claim on the promotion stands from its start (failed or not), so no decision of the
    last wait (rule 3) depends on its result."""
    return record.promoted_from(t) is not None and record.start_rung(t) >= top


def new_configurations(trials: Sequence[FrozenTrial], n: int, lag: int) -> int:
    """New configurations trained among ``trials``: a failed one (or one retried after it) does not count once
    finished below the cutoff; above, a pending one counts as if it will succeed, whatever it has done by
    now, so the count does not depend on when a result is seen."""
    below = cutoff(trials, n, lag)
    return sum(1 for t in trials if record.promoted_from(t) is None and t.user_attrs.get(record.TRAINED)
               and (t.number >= below or t.state != TrialState.FAIL))


class OrderedSampler(BaseSampler):
    """Wraps a fresh sampler per trial (``make_inner(seed)``) and decides each trial as the module says."""

    def __init__(self, make_inner: Callable[[int], BaseSampler], *, workers: int, seed: int, fidelity: Fidelity,
                 target: int | None, lag: int | None = None):
        self.make_inner, self.seed = make_inner, seed
        self.lag = ordered_lag(workers, fidelity) if lag is None else max(0, lag)
        self.fidelity, self.target = fidelity, target
        self._prepared: tuple[int, optuna.Study, BaseSampler] | None = None

    def trial_seed(self, number: int) -> int:
        return (self.seed * 1_000_003 + number) % 2**32

    # ---- waiting and the fixed set -----------------------------------------------------------------
    def wait(self, study: optuna.Study, n: int, lag: int,
             skip: Callable[[FrozenTrial], bool] = lambda t: False) -> list[FrozenTrial]:
        """The trials numbered below ``n`` once all have decided and those below the cutoff have finished
        (those ``skip`` names excepted)."""
        pause = POLL_S
        while True:
            trials = [t for t in study.get_trials(deepcopy=False) if t.number < n]
            if all(decided(t) for t in trials):
                below = cutoff(trials, n, lag)
                if all(t.number >= below or t.state.is_finished() or _gone(t) or skip(t) for t in trials):
                    return trials
            time.sleep(pause)
            pause = min(MAX_POLL_S, pause * 1.5)

    def _due(self, trials: Sequence[FrozenTrial], lag: int, n: int) -> tuple[int, int] | None:
        if not self.fidelity.enabled:
            return None
        # pending trials claim their promotions but measure nothing yet
        below = cutoff(trials, n, lag)
        shown = [t if t.number < below else create_trial(state=TrialState.RUNNING, user_attrs=dict(t.user_attrs))
                 for t in trials]
        return next_promotion(shown, self.fidelity)

    def view(self, trials: Sequence[FrozenTrial], n: int, directions) -> optuna.Study:
        """An in-memory copy of the fixed set: finished trials below the cutoff, pending ones above."""
        view = optuna.create_study(storage=optuna.storages.InMemoryStorage(), directions=directions)
        shown = []
        below = cutoff(trials, n, self.lag)
        for t in sorted(trials, key=lambda t: t.number):  # every number below n, so numbers are kept
            if t.number < below and t.state.is_finished():
                shown.append(t)
            else:
                keep = {k: t.user_attrs[k] for k in _PENDING_ATTRS if k in t.user_attrs}
                shown.append(create_trial(state=TrialState.RUNNING, params=t.params, distributions=t.distributions,
                                          user_attrs=keep, constraints=t.constraints or None))
        view.add_trials(shown)
        return view

    # ---- BaseSampler -------------------------------------------------------------------------------
    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._prepared = None
        if queued_params(trial):  # from the queue: its configuration is given
            return
        n = trial.number
        trials = self.wait(study, n, self.lag)
        promo = self._due(trials, self.lag, n)
        if promo is None and self.target is not None and new_configurations(trials, n, self.lag) >= self.target:
            # the last results can still earn a promotion, or have failed; a top-rung promotion's cannot
            trials = self.wait(study, n, 0, skip=lambda t: decides_nothing(t, self.fidelity.top))
            promo = self._due(trials, 0, n)
            if promo is None and new_configurations(trials, n, 0) >= self.target:
                self._set(study, trial, user={record.SURPLUS: True})
                return
        if promo is not None:
            src = next(t for t in trials if t.number == promo[0])
            self._set(study, trial, user={record.PROMOTED_FROM: promo[0], record.START_RUNG: promo[1]},
                      fixed=dict(src.params))

    @staticmethod
    def _set(study: optuna.Study, trial: FrozenTrial, user: dict[str, Any], fixed: dict[str, Any] | None = None):
        for k, v in user.items():
            set_starting_user_attr(study, trial, k, v)
        if fixed is not None:
            fix_starting_params(study, trial, fixed)

    def _inner(self, study: optuna.Study, trial: FrozenTrial) -> tuple[optuna.Study, BaseSampler]:
        if self._prepared is None or self._prepared[0] != trial.number:
            trials = self.wait(study, trial.number, self.lag)
            self._prepared = (trial.number, self.view(trials, trial.number, study.directions),
                              self.make_inner(self.trial_seed(trial.number)))
        return self._prepared[1], self._prepared[2]

    def infer_relative_search_space(self, study, trial):
        view, inner = self._inner(study, trial)
        return inner.infer_relative_search_space(view, trial)

    def sample_relative(self, study, trial, search_space):
        if not search_space:
            return {}
        view, inner = self._inner(study, trial)
        return inner.sample_relative(view, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        view, inner = self._inner(study, trial)
        return inner.sample_independent(view, trial, param_name, param_distribution)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_prepared": None}
