"""Faces that import a name on first use (PEP 562), for ``search/__init__.py`` and its sub-packages.

The CLI checks ``--budget``, ``--fidelity-rungs`` or ``--storage`` with light modules (budget, rungs, storage
URLs, settings) before Optuna and torch are imported, so a face cannot import its heavy modules up front:
it maps each name to the module, relative to the face, that defines it (``_HOME``).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, homes: dict[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of the face ``package``: ``name`` is taken from ``package.<homes[name]>``."""
    def __getattr__(name: str) -> Any:
        if name in homes:
            return getattr(importlib.import_module(f"{package}.{homes[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return __getattr__
