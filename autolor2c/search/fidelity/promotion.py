"""ASHA's promotion step on a study: from the highest rung down, a configuration is promoted to the next
rung when it ranks in the top floor(n / eta) of the n configurations measured at its rung (never before
eta results exist) and has not been promoted yet. A promotion is queued as a new trial with the same
parameters, which the next worker takes before sampling anything new.
"""

from __future__ import annotations

from typing import Any, Sequence

from .. import record
from ..front import Point
from .rungs import Fidelity


def next_promotion(trials: Sequence[Any], fidelity: Fidelity) -> tuple[int, int] | None:
    """ASHA's promotion step: (number of the trial to continue, rung to train it at), or None.

    ``trials`` are all the study's trials (any state): queued and running promotions count as done, so
    a configuration is promoted once per rung.
    """
    top = fidelity.top
    measured: dict[int, list[tuple[Point, int]]] = {k: [] for k in range(top)}
    promoted: set[tuple[int, int]] = set()
    for t in trials:
        src = record.promoted_from(t)
        if src is not None:
            promoted.add(src)
        if t.state not in record.DONE_STATES:
            continue
        for r in record.rung_records(t):
            k = int(r["rung"])
            if 0 <= k < top:
                measured[k].append(((float(r["score"]), float(r["params"])), t.number))
    for k in range(top - 1, -1, -1):
        entries = measured[k]
        for i in fidelity.promotable([p for p, _ in entries]):
            number = entries[i][1]
            if number not in promoted:
                return number, k + 1
    return None


def queue_promotion(study: Any, fidelity: Fidelity) -> int | None:
    """Queue ASHA's next promotion of ``study`` (an Optuna study), if any, as a trial with the same parameters;
    returns its source."""
    if not fidelity.enabled:
        return None
    trials = study.get_trials(deepcopy=False)
    promo = next_promotion(trials, fidelity)
    if promo is None:
        return None
    number, rung = promo
    src = next(t for t in trials if t.number == number)
    study.enqueue_trial(dict(src.params), user_attrs={record.PROMOTED_FROM: number, record.START_RUNG: rung},
                        skip_if_exists=False)
    return number


class Promotions:
    """Called with the study after each trial (by the study's stop rule, in the study callback's signature):
    queue ASHA's next promotion."""

    def __init__(self, fidelity: Fidelity):
        self.fidelity = fidelity

    def __call__(self, study: Any, trial: Any = None) -> int | None:
        return queue_promotion(study, self.fidelity)
