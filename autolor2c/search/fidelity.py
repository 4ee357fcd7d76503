"""Multi-fidelity for a two-objective study: asynchronous successive halving whose promotion ranks trials
by non-dominated sorting on (rung score, exact params).

Optuna's pruners take one objective (optuna#3450) and Ray Tune's schedulers one metric, so the rung
logic lives here, on top of any storage: a trial trains on a fraction of the full trial's data; after
each rung it is promoted when it ranks in the top 1/eta of every result recorded at that rung so far
(its own included), else it ends as PRUNED with its rung scores kept in ``user_attrs['rungs']``. Only a
full-fidelity result is told to the study as objective values, so the front stays honest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from autolor2c.errors import UserError

from .pareto import Point, promotion_order

RUNGS_ATTR = "rungs"


@dataclass(frozen=True)
class Fidelity:
    fractions: tuple[float, ...]  # ascending; the last is 1.0 (the full trial)
    eta: float = 3.0

    @classmethod
    def geometric(cls, min_fraction: float = 1 / 3, eta: float = 3.0) -> "Fidelity":
        """Rungs eta^-k down to ``min_fraction``. The default (1/3, 1) suits CPU-sized trials of a few
        thousand examples, where a 1/9 rung is a few dozen steps and ranks trials mostly by noise."""
        if not (eta > 1):
            raise UserError(f"bad --reduction-factor {eta!r}: must be > 1")
        if not (0 < min_fraction <= 1):
            raise UserError(f"bad --min-fidelity {min_fraction!r}: must be in (0, 1]")
        fractions = [1.0]
        while fractions[-1] / eta >= min_fraction * (1 - 1e-9):
            fractions.append(fractions[-1] / eta)
        return cls(tuple(sorted(fractions)), eta)

    @classmethod
    def parse(cls, rungs: str | None, eta: float) -> "Fidelity":
        """From ``--fidelity-rungs 0.11,0.33,1`` (fractions of a full trial)."""
        if rungs is None:
            return cls.geometric(eta=eta)
        try:
            values = tuple(sorted(float(x) for x in rungs.split(",") if x.strip()))
        except ValueError:
            raise UserError(f"bad --fidelity-rungs {rungs!r}: expected fractions like 0.11,0.33,1") from None
        if not values or any(not (0 < v <= 1) for v in values) or values[-1] != 1.0 or len(set(values)) != len(values):
            raise UserError(f"bad --fidelity-rungs {rungs!r}: distinct fractions in (0, 1], the last one 1")
        if not (eta > 1):
            raise UserError(f"bad --reduction-factor {eta!r}: must be > 1")
        return cls(values, eta)

    @classmethod
    def off(cls) -> "Fidelity":
        return cls((1.0,), 3.0)

    @property
    def enabled(self) -> bool:
        return len(self.fractions) > 1

    def should_promote(self, candidate: Point, others: Sequence[Point]) -> bool:
        """True when ``candidate`` ranks in the top ceil(n / eta) of ``others + [candidate]``."""
        points = list(others) + [candidate]
        keep = max(1, math.ceil(len(points) / self.eta))
        return len(points) - 1 in promotion_order(points)[:keep]

    def to_dict(self) -> dict[str, Any]:
        return {"fractions": list(self.fractions), "eta": self.eta}


def rung_points(trials: Iterable[Any], rung: int, exclude_number: int | None = None) -> list[Point]:
    """(score, params) recorded at ``rung`` by ``trials`` (FrozenTrials), except trial ``exclude_number``."""
    out = []
    for t in trials:
        if t.number == exclude_number:
            continue
        for r in t.user_attrs.get(RUNGS_ATTR, []):
            if r.get("rung") == rung and r.get("score") is not None:
                out.append((float(r["score"]), float(r["params"])))
    return out
