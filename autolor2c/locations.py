"""Where the user's model and data live: checks that import nothing heavy, so the CLI runs them before it
imports torch or datasets, and the loaders run the same ones (one rule, one message)."""

from __future__ import annotations

from pathlib import Path

from autolor2c.errors import UserError


def local_model_folder(name: str) -> Path | None:
    """The folder of a local model, or None when ``name`` reads as a hub id ("name" or "org/name")."""
    p = Path(name).expanduser()
    if p.exists():
        if not (p / "config.json").is_file():
            raise UserError("folder has no config.json (not a transformers model)", param="model", value=name)
        return p
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError("no such folder (a hub id is NAME or ORG/NAME)", param="model", value=name)
    return None


def data_folder(data_dir: str) -> Path:
    """A data folder the user named: it must exist."""
    p = Path(data_dir).expanduser()
    if not p.is_dir():
        raise UserError("no such folder", param="data_dir", value=str(data_dir))
    return p
