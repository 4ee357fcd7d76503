"""The front: what is read off a study's trials (the front, hypervolume, the pick and its ties, the seed noise,
costs: study_front.py) and the arithmetic under it (Pareto points and the pick rules: pareto.py; comparisons
by name over seeds: stats.py). It reads the trial record; it trains nothing."""

from __future__ import annotations

from ..faces import lazy_exports

_HOME = {
    "Point": "pareto", "PICKS": "pareto", "front_indices": "pareto", "non_dominated_sort": "pareto",
    "promotion_order": "pareto", "hypervolume": "pareto", "pick_best": "pareto", "pick_knee": "pareto",
    "pick_smallest_tied": "pareto", "tie_holds": "pareto", "tie_threshold": "pareto", "recheck_threshold": "pareto", "tied_with_best": "pareto",
    "Comparison": "stats", "compare": "stats", "non_inferior": "stats", "pooled_sd": "stats",
    "practical_margin": "stats", "seeds_to_decide": "stats", "training_adds_enough": "stats",
    "HEAD_GAIN_SDS": "stats",
    "pareto_front": "study_front", "feasible_trials": "study_front", "trained_configurations": "study_front",
    "study_hypervolume": "study_front", "hypervolume_history": "study_front", "pick_trial": "study_front",
    "tied_with_the_best": "study_front", "refuted_ties": "study_front", "selection_over_seeds": "study_front",
    "seed_noise": "study_front", "record_seed_noise": "study_front", "cost_totals": "study_front",
    "external_noise": "study_front", "NOISE_FROM_BASELINES": "study_front", "NOISE_FROM_BEST": "study_front",
}

__all__ = sorted(_HOME)
__getattr__ = lazy_exports(__name__, _HOME)
