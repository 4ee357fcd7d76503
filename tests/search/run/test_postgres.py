"""Many Optuna workers on a real PostgreSQL server (a private cluster on 127.0.0.1, started here):
two worker processes on one study, no duplicated or lost trials."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import optuna

from autolor2c.search.front import trained_configurations
import pytest
from optuna.trial import TrialState


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def pg_url():
    pytest.importorskip("psycopg")
    bindir = _pg_bin()
    if bindir is None:
        pytest.fail("PostgreSQL server binaries not found (.ci/run installs Debian's postgresql package)")
    import tempfile

    # outside pytest's private (0700) temp folder: the server runs as the postgres user when we are root
    base = Path(tempfile.mkdtemp(prefix="autolor2c-pg-"))
    data = base / "data"
    port = _free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                   check=True, capture_output=True)
    log = data.parent / "pg.log"
    if as_user:
        log.touch()
        shutil.chown(log, "postgres")
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
                    f"-p {port} -k {data.parent} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        subprocess.run([*as_user, str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                        "autolor2c"], check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/autolor2c"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_two_workers_share_one_study_on_postgresql(pg_url, tmp_path, glue_dir):
    cmd = [sys.executable, "-m", "autolor2c.cli", "search", "--task", "sst2", "--budget", "1M", "--trials", "10",
           "--workers", "2", "--seeds", "0", "--storage", pg_url, "--study-name", "pg", "--out", str(tmp_path / "o"),
           "--data-dir", str(glue_dir), "--min-steps", "0", "--max-train-samples", "256", "--max-eval-samples", "32", "--max-length", "24",
           "--no-multi-fidelity", "--no-progress", "--sampler", "random"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    study = optuna.load_study(study_name="pg", storage=pg_url)
    trials = study.trials
    # every requested configuration trained, no more: each worker ended on a surplus trial (run/ordered.py)
    assert trained_configurations(study) == 10
    assert [bool(t.user_attrs.get("surplus")) for t in trials][-2:] == [True, True]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING, TrialState.FAIL)]  # none lost
    workers = {t.system_attrs.get("autolor2c:worker") for t in trials}
    assert len(workers) == 2  # both processes ran trials
    keys = [tuple(sorted(t.params.items())) for t in trials if not t.user_attrs.get("surplus")]
    assert len(set(keys)) == len(keys)  # the per-trial seeds never proposed the same configuration
    assert sorted(t.number for t in trials) == list(range(len(trials)))
