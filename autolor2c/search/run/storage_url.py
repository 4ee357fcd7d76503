"""What kind of Optuna storage a URL names, checked without importing Optuna (the CLI checks
a storage before any heavy import; ``storage.resolve_storage`` opens it)."""

from __future__ import annotations

from pathlib import Path

from autolor2c.errors import UserError

RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")


def storage_kind(url: str) -> str:
    """``memory``, ``journal`` or the RDB scheme (``sqlite``, ``postgresql``, ...) of ``url``; a
    UserError naming the URL for anything else."""
    if url == "memory":
        return "memory"
    if url.startswith("journal:") or url.endswith((".log", ".journal")):
        path = journal_path(url)
        if not path:
            raise UserError("journal needs a file, e.g. journal:studies/autolor2c.log", param="storage", value=url)
        if Path(path).is_dir():
            raise UserError(f"{path} is a folder; a journal storage is a file, e.g. "
                            f"journal:{Path(path) / 'autolor2c.log'}", param="storage", value=url)
        return "journal"
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if "://" not in url or scheme not in RDB_SCHEMES:
        raise UserError("expected sqlite:///FILE, postgresql://..., mysql://..., journal:FILE or memory",
                        param="storage", value=url)
    if scheme == "sqlite" and not (url.split(":///", 1)[1] if ":///" in url else ""):
        raise UserError("sqlite needs a file, e.g. sqlite:///studies/autolor2c.db", param="storage", value=url)
    return scheme


def journal_path(url: str) -> str:
    """The file of a journal storage URL: ``journal:FILE``, or a path ending in ``.log`` or ``.journal``."""
    return url.split(":", 1)[1] if url.startswith("journal:") else url
