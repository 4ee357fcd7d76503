"""Tasks: GLUE and custom task specs, data loading and tokenising, and metrics.

Names are imported on first use (PEP 562): the registry is plain Python, but the loaders pull in
`datasets` and pandas, and the CLI checks a ``--task`` without paying for them.
"""

from __future__ import annotations

import importlib

_HOME = {
    "TaskSpec": "registry", "custom_task": "registry", "get_task": "registry", "list_tasks": "registry",
    "encode_task": "data", "load_task_data": "data", "resolve_data_dir": "data",
    "compute_metrics": "metrics", "trivial_score": "metrics",
}

__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
