"""The Ray Tune backend on a real local Ray instance (2 CPUs): a small search end to end, results in the
same Optuna storage, and the same search resumed after its driver is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

pytest.importorskip("ray")

DONE = (TrialState.COMPLETE, TrialState.PRUNED)


def _cmd(db, out, glue_dir, trials, seeds="0"):
    return [sys.executable, "-m", "autolor2c.cli", "search", "--backend", "ray", "--ray-num-cpus", "2",
            "--max-concurrent", "1", "--task", "sst2", "--budget", "1M", "--trials", str(trials), "--seeds", seeds,
            "--retrain-samples", "64", "--storage", f"sqlite:///{db}", "--study-name", "r", "--out", str(out),
            "--data-dir", str(glue_dir), "--max-train-samples", "300", "--max-eval-samples", "32", "--max-length", "24",
            "--no-multi-fidelity", "--no-progress", "--sampler", "random"]


def _env():
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def test_ray_search_end_to_end(tmp_path, glue_dir):
    db = tmp_path / "r.db"
    p = subprocess.run(_cmd(db, tmp_path / "out", glue_dir, trials=3, seeds="1"), capture_output=True, text=True,
                       timeout=900, env=_env())
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-3000:])
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{db}")
    assert study.metric_names == ["accuracy", "trainable_params"]
    done = [t for t in study.trials if t.state in DONE]
    assert len(done) == 3
    for t in done:  # our objective ran in the Ray workers: its records are on the Optuna trials
        assert "plan" in t.user_attrs and "rungs" in t.user_attrs and t.user_attrs["cost_s"] > 0
    assert (tmp_path / "out" / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "out" / "report.md").is_file()


def test_ray_search_resumes_after_the_driver_is_killed(tmp_path, glue_dir):
    db = tmp_path / "k.db"
    storage = f"sqlite:///{db}"
    cmd = _cmd(db, tmp_path / "out", glue_dir, trials=4)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                            start_new_session=True)
    killed = False
    deadline = time.time() + 600
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
            try:
                trials = optuna.load_study(study_name="r", storage=storage).trials
            except Exception:
                continue
            if any(t.state == TrialState.COMPLETE for t in trials) and len([t for t in trials if t.state in DONE]) < 4:
                os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray instance it started
                killed = True
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert killed, "the search finished before it could be killed"
    before = {t.number: (t.params, t.values) for t in optuna.load_study(study_name="r", storage=storage).trials
              if t.state == TrialState.COMPLETE}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=_env())
    assert p.returncode == 0, (p.stdout[-2000:], p.stderr[-3000:])
    assert "resuming the Ray experiment" in p.stdout
    study = optuna.load_study(study_name="r", storage=storage)
    by_number = {t.number: t for t in study.trials}
    for n, (params, values) in before.items():
        assert by_number[n].params == params and by_number[n].values == values
    assert len([t for t in study.trials if t.state in DONE]) >= 4
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    interrupted = [t for t in study.trials if t.state == TrialState.FAIL]
    assert all("interrupted" in t.user_attrs.get("fail_reason", "") for t in interrupted)
