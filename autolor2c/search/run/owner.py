"""Which process owns a RUNNING trial, and whether that process is gone.

A process is named by its host, its pid and when it started. A pid alone is reused: by the next boot of a
machine and by every new container, whose first processes get the same small pids each time. Named by its pid
alone, a killed search's RUNNING trial could look owned by a live process (even by the search resuming it),
never be retried, and hang the workers that wait for it (ordered.py).

A process of another host cannot be looked up. RDB storages have Optuna's heartbeats for it; a journal file has
none, so a trial there beats itself (objective.py) and is gone once its last beat is older than ``STALE_S``.
"""

from __future__ import annotations

import os
import socket
import time
from functools import lru_cache
from pathlib import Path

_PROC = Path("/proc")
BEAT_S = 60.0   # how often a trial on a journal file says it lives
STALE_S = 600.0  # a beat this old is a dead process's: ten beats missed, and room for clocks that differ


def this_process() -> str:
    """``host:pid:start`` of the calling process; ``host:pid`` where the start cannot be read (no /proc)."""
    start = _start_of(os.getpid())
    return f"{socket.gethostname()}:{os.getpid()}" + (f":{start}" if start else "")


def is_gone(owner: str, last_beat: float | None = None) -> bool:
    """Whether ``owner`` (a :func:`this_process` name, or an older ``host:pid``) names a process that no longer
    runs: on this host, no process has its pid, or the one that has it started at another time; on another
    host, its trial's ``last_beat`` (a time.time()) is older than ``STALE_S``. Without a beat, another host's
    process is not known to be gone (an RDB storage's heartbeats tell)."""
    host, pid, start = _parse(owner)
    if host != socket.gethostname() or pid is None:
        return last_beat is not None and time.time() - last_beat > STALE_S
    now = _start_of(pid) if start else ""
    if now:
        return now != start
    try:  # no start recorded, or none readable (no /proc, or another user's process hidden by hidepid)
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False


def _parse(owner: str) -> tuple[str, int | None, str]:
    parts = owner.split(":")
    if len(parts) >= 3 and parts[-2].isdigit():
        return ":".join(parts[:-2]), int(parts[-2]), parts[-1]
    if len(parts) >= 2 and parts[-1].isdigit():
        return ":".join(parts[:-1]), int(parts[-1]), ""
    return owner, None, ""


@lru_cache(maxsize=1)
def _has_proc() -> bool:
    return (_PROC / "self" / "stat").is_file()


@lru_cache(maxsize=1)
def _boot() -> str:
    try:
        return (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()[:8]
    except OSError:
        return ""


def _start_of(pid: int) -> str:
    """When process ``pid`` started, as ``<boot>.<clock ticks since boot>``; "" where it cannot be read."""
    if not _has_proc():
        return ""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[-1].split()  # after the command name, which may hold spaces
    return f"{_boot()}.{fields[19]}" if len(fields) > 19 else ""
