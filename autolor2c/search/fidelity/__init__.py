"""Fidelity: the rungs a configuration trains at (rungs.py: ASHA's fractions of the full run) and the promotion
step between them (promotion.py), ranked by the Pareto order of the front. The CLI checks rung flags with
``Fidelity`` before Optuna or torch are imported."""

from __future__ import annotations

from ..faces import lazy_exports

_HOME = {
    "Fidelity": "rungs", "OneShotRung": "oneshot",
    "Promotions": "promotion", "next_promotion": "promotion", "queue_promotion": "promotion",
}

__all__ = sorted(_HOME)
__getattr__ = lazy_exports(__name__, _HOME)
