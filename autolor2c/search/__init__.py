"""The search: a two-objective Optuna study under a parameter budget (score up, params down) whose top rung is
the training run a user gets, with ASHA rungs below it, the built-ins tried first, a noise-aware pick,
baselines and reports. It sees a model only through a ``ModelShape`` and exact parameter counts.

Its rooms are sub-packages by stage, each with a short face (``__init__.py``); a room imports only rooms to
its left (tests/test_import_circles.py holds the code to these arrows)::

    space <- front <- fidelity <- run <- results, backends

    space/      a search-space file's keys and rules, the space that suggests plans, the plan, the budget
    front/      Pareto arithmetic, comparisons by name, what is read off a study (front, pick, noise, costs)
    fidelity/   ASHA's rungs and its promotion step (ranked by the front's Pareto order)
    run/        settings, storage, the study with its sampler and starting points, one trial, progress
    results/    the pick over seeds, the baselines, the report, the upload to the artifact store
    backends/   Ray Tune, on the study set-up of run/

``pipeline.py`` sits on top (``search()``: the stages top to bottom); ``record.py`` (the keys a search writes
on trials and studies, and their readers) sits beneath every room but space, which needs none of it.

The public surface (as Optuna's ``samplers/__init__.py`` re-exports its strategies)::

    from autolor2c.search import SearchSettings, search
    outcome = search(SearchSettings(task="sst2", budget="0.1M"))   # the headline command, as the CLI runs it

Names are imported on first use (PEP 562, ``faces.py``): budget and fidelity parsing are plain Python, so the
CLI can check ``--budget`` or ``--fidelity-rungs`` before Optuna and torch are imported.
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
