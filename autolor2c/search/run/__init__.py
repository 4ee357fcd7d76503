"""Running the trials: the settings of a search (settings.py: every default, training arguments, up-front
checks), its storage (storage_url.py, storage.py), the study created or resumed with its sampler and starting
points (study.py, sampler.py, starting_points.py), one trial (objective.py) and the process that owns it (owner.py), the progress bar (progress.py),
and every use of Optuna's private internals (optuna_internals.py). The Optuna backend is ``run_search``."""

from __future__ import annotations

from ..faces import lazy_exports

_HOME = {
    "SearchSettings": "settings", "settings_fields": "settings", "rungs_needed": "settings",
    "default_workers": "settings", "threads_per_worker": "settings", "available_cores": "settings", "OrderedSampler": "ordered",
    "DEFAULT_STORAGE": "settings", "SAMPLERS": "settings", "MIN_RUNG_STEPS": "settings",
    "storage_kind": "storage_url", "journal_path": "storage_url", "resolve_storage": "storage",
    "run_search": "study", "build_context": "study", "prepare_study": "study", "open_study": "study",
    "check_trials_can_reach_the_top": "study", "default_study_name": "study", "fail_orphaned_trials": "study",
    "make_sampler": "study", "sampler_seed": "study",
    "Objective": "objective", "SearchContext": "objective", "failure_recording": "objective",
    "plan_to_spec": "objective",
    "RungAwareSampler": "sampler", "Progress": "progress",
    "BUILTINS": "starting_points", "builtin_params": "starting_points", "enqueue_builtins": "starting_points",
    "startable_builtins": "starting_points", "warm_start": "starting_points",
    "WORKER_ATTR": "optuna_internals", "artifact_metadata": "optuna_internals",
    "create_running_trial": "optuna_internals", "fail_trial": "optuna_internals", "frozen_trial": "optuna_internals",
    "live_trial": "optuna_internals", "queued_params": "optuna_internals", "set_worker": "optuna_internals",
    "worker_of": "optuna_internals", "this_process": "owner", "is_gone": "owner",
}

__all__ = sorted(_HOME)
__getattr__ = lazy_exports(__name__, _HOME)
