"""The space: what a trial may be, and the bound it must fit. A search-space file's keys and value rules
(schema.py), the space parsed from YAML that suggests plans (search_space.py), the plan a suggestion trains
(plan.py) and the parameter budget (budget.py). It imports nothing else of the search."""

from __future__ import annotations

from ..faces import lazy_exports

_HOME = {
    "SearchSpace": "search_space", "load_space": "search_space", "list_builtin_spaces": "search_space",
    "default_space_path": "search_space", "BUILTIN_DIR": "search_space", "DEFAULT_SPACE": "search_space",
    "ParamSpec": "schema", "Condition": "schema", "TRAIN_KEYS": "schema", "LORA_DEFAULTS": "schema",
    "TrialPlan": "plan", "build_plan": "plan", "is_dead": "plan", "spans_from_mask": "plan",
    "parse_budget": "budget", "format_params": "budget", "MAX_BUDGET": "budget",
}

__all__ = sorted(_HOME)
__getattr__ = lazy_exports(__name__, _HOME)
