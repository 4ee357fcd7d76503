"""The search: a two-objective Optuna study under a parameter budget (score up, params down), with
multi-fidelity rungs, a Pareto pick, a multi-seed retrain and reports. It sees a model only through
a ``ModelShape`` and exact parameter counts.

Names are imported on first use (PEP 562): budget and fidelity parsing are plain Python, so the CLI can
check ``--budget`` or ``--fidelity-rungs`` before Optuna and torch are imported.
"""

from __future__ import annotations

import importlib

_HOME = {
    "format_params": "budget", "parse_budget": "budget", "Fidelity": "fidelity",
    "SearchSpace": "space", "TrialPlan": "space", "load_space": "space",
    "SearchSettings": "study", "pareto_front": "study", "pick_trial": "study", "resolve_storage": "study",
    "run_search": "study",
}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
