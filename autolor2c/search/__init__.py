"""The search: a two-objective Optuna study under a parameter budget (score up, params down), with
multi-fidelity rungs, a Pareto pick, a multi-seed retrain and reports. It sees a model only through
a ``ModelShape`` and exact parameter counts."""

from .budget import format_params, parse_budget
from .fidelity import Fidelity
from .space import SearchSpace, TrialPlan, load_space
from .study import SearchSettings, pareto_front, pick_trial, resolve_storage, run_search

__all__ = ["Fidelity", "SearchSettings", "SearchSpace", "TrialPlan", "format_params", "load_space",
           "parse_budget", "pareto_front", "pick_trial", "resolve_storage", "run_search"]
