"""Backends that run a search's trials elsewhere than the Optuna loop (run/study.py's ``run_search``), on the
same study set-up: Ray Tune (ray_tune.py). ``pipeline.search(settings, run_trials=...)`` takes one."""

from __future__ import annotations

from ..faces import lazy_exports

_HOME = {"run_search_ray": "ray_tune", "init_ray": "ray_tune", "reopen_trial": "ray_tune"}

__all__ = sorted(_HOME)
__getattr__ = lazy_exports(__name__, _HOME)
