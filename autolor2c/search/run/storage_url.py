"""What kind of Optuna storage a URL names, checked without importing Optuna (the CLI checks
a storage before any heavy import; ``study.resolve_storage`` opens it)."""

from __future__ import annotations

from autolor2c.errors import UserError

RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql")


def storage_kind(url: str) -> str:
    """``memory``, ``journal`` or the RDB scheme (``sqlite``, ``postgresql``, ...) of ``url``; a
    UserError naming the URL for anything else."""
    if url == "memory":
        return "memory"
    if url.startswith("journal:") or url.endswith((".log", ".journal")):
        return "journal"
    scheme = url.split(":", 1)[0].split("+", 1)[0]
    if "://" not in url or scheme not in RDB_SCHEMES:
        raise UserError("expected sqlite:///FILE, postgresql://..., mysql://..., journal:FILE or memory",
                        param="storage", value=url)
    if scheme == "sqlite" and not (url.split(":///", 1)[1] if ":///" in url else ""):
        raise UserError("sqlite needs a file, e.g. sqlite:///studies/autolor2c.db", param="storage", value=url)
    return scheme
