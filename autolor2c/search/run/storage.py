"""Opening an Optuna storage from a URL: RDB (sqlite/postgresql/mysql) with heartbeats, a journal file, or memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna

from autolor2c.errors import UserError

from .settings import DEFAULT_STORAGE
from .storage_url import journal_path, storage_kind


def resolve_storage(url: str | None, heartbeat: bool = True):
    """An Optuna storage for a URL: RDB (sqlite/postgresql/mysql) with heartbeats, a journal file
    (``journal:PATH`` or a ``.log`` path), or Optuna's in-memory storage (``memory``)."""
    import os

    url = url or os.environ.get("AUTOLOR2C_STORAGE") or DEFAULT_STORAGE
    scheme = storage_kind(url)
    if scheme == "memory":
        return optuna.storages.InMemoryStorage()
    if scheme == "journal":
        path = journal_path(url)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return _open_journal(path, url)
    if scheme == "sqlite":
        parent = Path(url.split(":///", 1)[1]).parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(f"cannot create {parent} ({e.strerror})", param="storage", value=url) from None
    kwargs: dict[str, Any] = {}
    if heartbeat:
        kwargs = dict(heartbeat_interval=10, grace_period=40,
                      heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2))
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True} if scheme != "sqlite" else {},
                                          **kwargs)
    except Exception as e:  # sqlalchemy/driver errors: bad host, auth, missing driver
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot open it: {msg[:200]}", param="storage", value=url) from None


def _open_journal(path: str, url: str):
    from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock, JournalStorage

    lock = JournalFileSymlinkLock(path)  # the lock Optuna's appends take, so no write is cut in progress
    if _ends_unfinished(path):
        try:
            lock.acquire()
            try:
                _cut_unfinished_line(path)
            finally:
                lock.release()
        except OSError:  # read-only: Optuna reads the file all the same (it skips that line); only a write fails
            pass
    try:
        return JournalStorage(JournalFileBackend(path, lock_obj=lock))
    except ValueError as e:  # a broken line before the last (json.JSONDecodeError is a ValueError)
        raise UserError(f"{path} is not a readable Optuna journal ({e})", param="storage", value=url) from None


def _ends_unfinished(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            if f.seek(0, 2) == 0:
                return False
            f.seek(-1, 2)
            return f.read(1) != b"\n"
    except OSError:  # no file yet (Optuna creates it), or one this process cannot read (Optuna will say)
        return False


def _cut_unfinished_line(path: str) -> None:
    """Drop a last line without its newline: a writer killed mid-write. Optuna skips it while it is last,
    but the next append joins it and then neither that trial nor the file loads."""
    with open(path, "rb+") as f:
        size = f.seek(0, 2)
        if size == 0:
            return
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        end = size  # look back for the last newline a block at a time: the file can be large
        while end > 0:
            start = max(0, end - 65536)
            f.seek(start)
            at = f.read(end - start).rfind(b"\n")
            if at >= 0:
                f.truncate(start + at + 1)
                return
            end = start
        f.truncate(0)
