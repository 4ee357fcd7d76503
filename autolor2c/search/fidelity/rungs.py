"""Multi-fidelity rungs for a two-objective study: asynchronous successive halving (ASHA, Li et al. 2020)
whose promotion ranks configurations by non-dominated sorting on (rung score, exact params), then score.

Optuna's pruners take one objective (optuna#3450) and Ray Tune's schedulers one metric, so the rung
logic lives here and in promotion.py, on top of any storage. Every Optuna trial trains one configuration
at one rung (a fraction of the full run's steps, on its rows) and ends: COMPLETE at the top rung, else PRUNED
(paused) with its rung score in its rung records (``record.rung_records``). Only top-rung results are
told to the study as objective values, so the front stays honest. Plain Python: the CLI checks rung
flags with it before Optuna or torch are imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from autolor2c.errors import UserError

from ..front import Point, promotion_order


@dataclass(frozen=True)
class Fidelity:
    fractions: tuple[float, ...]  # ascending; the last is 1.0 (the full trial)
    eta: float = 3.0

    @classmethod
    def geometric(cls, min_fraction: float = 1 / 3, eta: float = 3.0) -> "Fidelity":
        """Rungs eta^-k down to ``min_fraction``. The default (1/3, 1) suits CPU-sized trials of a few
        thousand examples, where a 1/9 rung is a few dozen steps and ranks trials mostly by noise."""
        if not (eta > 1):
            raise UserError("must be > 1", param="eta", value=eta)
        if not (0 < min_fraction <= 1):
            raise UserError("must be in (0, 1]", param="min_fraction", value=min_fraction)
        fractions = [1.0]
        while fractions[-1] / eta >= min_fraction * (1 - 1e-9):
            fractions.append(fractions[-1] / eta)
        return cls(tuple(sorted(fractions)), eta)

    @classmethod
    def for_run(cls, full_steps: int, min_steps: int, eta: float = 3.0) -> "Fidelity":
        """Hyperband's rungs for a top rung of ``full_steps`` optimiser steps: fractions eta^-k for
        k = 0..floor(log_eta(full / min)), so the lowest rung trains at least ``min_steps``; one rung (off)
        when the full run is shorter than eta x ``min_steps``."""
        if not (eta > 1):
            raise UserError("must be > 1", param="eta", value=eta)
        if full_steps < 1 or min_steps < 1:
            raise ValueError(f"steps must be >= 1, got full={full_steps}, min={min_steps}")
        k = 0
        while full_steps / eta ** (k + 1) >= min_steps * (1 - 1e-9):
            k += 1
        return cls(tuple(eta ** -j for j in range(k, -1, -1)), float(eta))

    @classmethod
    def parse(cls, rungs: str | None, eta: float) -> "Fidelity":
        """From ``rungs`` such as ``"0.11,0.33,1"`` (fractions of a full trial; None: geometric with ``eta``)."""
        if rungs is None:
            return cls.geometric(eta=eta)
        try:
            values = tuple(sorted(float(x) for x in rungs.split(",") if x.strip()))
        except ValueError:
            raise UserError("expected fractions like 0.11,0.33,1", param="rungs", value=rungs) from None
        if not values or any(not (0 < v <= 1) for v in values) or values[-1] != 1.0 or len(set(values)) != len(values):
            raise UserError("distinct fractions in (0, 1], the last one 1", param="rungs", value=rungs)
        if not (eta > 1):
            raise UserError("must be > 1", param="eta", value=eta)
        return cls(values, eta)

    @classmethod
    def off(cls) -> "Fidelity":
        return cls((1.0,), 3.0)

    @property
    def oneshot(self) -> bool:
        """Rung 0 is the one-shot rung: fraction 0, scored inside the super-adapter without training
        (fidelity/oneshot.py)."""
        return self.fractions[0] == 0.0

    def with_oneshot(self) -> "Fidelity":
        """These rungs with the one-shot rung below them."""
        return self if self.oneshot else Fidelity((0.0,) + tuple(self.fractions), self.eta)

    def describe(self) -> str:
        return ", ".join("one-shot" if f == 0.0 else f"{f:.3g}" for f in self.fractions)

    @property
    def enabled(self) -> bool:
        return len(self.fractions) > 1

    @property
    def top(self) -> int:
        """Index of the top rung (the full run)."""
        return len(self.fractions) - 1

    def promotable(self, points: Sequence[Point]) -> list[int]:
        """Indices of the points in the top floor(n / eta) at a rung (empty while n < eta)."""
        keep = int(math.floor(len(points) / self.eta + 1e-9))
        return promotion_order(points)[:keep]


    def to_dict(self) -> dict[str, Any]:
        return {"fractions": list(self.fractions), "eta": self.eta}
