"""The search: a two-objective Optuna study under a parameter budget (score up, params down) whose top rung is
the training run a user gets, with ASHA rungs below it, the built-ins tried first, a noise-aware pick,
baselines and reports. It sees a model only through a ``ModelShape`` and exact parameter counts.

The public surface (as Optuna's ``samplers/__init__.py`` re-exports its strategies)::

    from autolor2c.search import SearchSettings, search
    outcome = search(SearchSettings(task="sst2", budget="0.1M"))   # the headline command, as the CLI runs it

Names are imported on first use (PEP 562): budget and fidelity parsing are plain Python, so the CLI can
check ``--budget`` or ``--fidelity-rungs`` before Optuna and torch are imported.
"""

from __future__ import annotations

from .faces import lazy_exports

_HOME = {
    "search": "pipeline", "SearchOutcome": "pipeline", "NothingTrained": "pipeline",
    "SearchSettings": "run", "run_search": "run", "build_context": "run", "pareto_front": "front",
    "pick_trial": "front", "resolve_storage": "run", "load_space": "space", "SearchSpace": "space",
    "TrialPlan": "space", "Fidelity": "fidelity", "format_params": "space", "parse_budget": "space",
}

__all__ = sorted(_HOME)
__getattr__ = lazy_exports(__name__, _HOME)
