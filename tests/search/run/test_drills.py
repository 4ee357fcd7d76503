"""Fault drills: failing trials are recorded and the study goes on; kill -9 mid-trial then the same command
again; memory stays flat over many trials in one process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
import torch
from optuna.trial import TrialState

from autolor2c.search.fidelity import Fidelity
from autolor2c.search.front import trained_configurations
from autolor2c.search.run import Objective, SearchSettings, run_search
from autolor2c.train import train


def _settings(tmp_path, glue_dir, name, trials, **kw):
    base = dict(task="sst2", budget="0.1M", data_dir=str(glue_dir), storage=f"sqlite:///{tmp_path}/{name}.db",
                study_name=name, trials=trials, max_train_samples=48, max_eval_samples=32, max_length=24, seeds=0,
                fidelity=Fidelity.off(), progress=False, sampler="random", min_steps=0, out=str(tmp_path / "out"))
    base.update(kw)
    return SearchSettings(**base)


def test_failing_trials_are_recorded_and_the_study_goes_on(tmp_path, glue_dir):
    calls = {"n": 0}

    def factory(ctx):
        def trainer(task, spec, args, **kw):
            calls["n"] += 1
            n = calls["n"]
            if n == 1:
                raise RuntimeError("boom: a bug in a trial")
            if n == 2:
                raise MemoryError("simulated out of memory")
            if n == 3:  # the real loop meets a NaN: the classifier's output turns NaN from the 2nd step on
                seen = {"calls": 0}

                def poison(module, inputs, output):
                    if isinstance(module, torch.nn.Linear) and module.out_features == 2 and module.training:
                        seen["calls"] += 1
                        if seen["calls"] > 1:
                            return output * float("nan")
                    return None

                handle = torch.nn.modules.module.register_module_forward_hook(poison)
                try:
                    return train(task, spec, args, **kw)
                finally:
                    handle.remove()
            return train(task, spec, args, **kw)
        return Objective(ctx, trainer=trainer)

    study, *_ = run_search(_settings(tmp_path, glue_dir, "f", trials=3, budget="1M"), objective_factory=factory)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    reasons = [t.user_attrs.get("fail_reason", "") for t in failed]
    assert any("boom" in r for r in reasons)
    assert any("MemoryError" in r for r in reasons)
    assert any("TrainingError: loss became nan" in r for r in reasons), reasons
    assert trained_configurations(study) == 3  # the study went on to the requested count


def _search_cmd(db, out, glue_dir, trials):
    return [sys.executable, "-m", "autolor2c.cli", "search", "--task", "sst2", "--budget", "1M", "--trials", str(trials),
            "--seeds", "0", "--storage", f"sqlite:///{db}", "--study-name", "k", "--out", str(out), "--data-dir",
            str(glue_dir), "--min-steps", "0", "--max-train-samples", "1500", "--max-eval-samples", "32", "--max-length", "24",
            "--no-multi-fidelity", "--no-progress", "--sampler", "random", "--no-baselines"]


def test_kill_9_mid_trial_then_resume(tmp_path, glue_dir):
    db = tmp_path / "k.db"
    cmd = _search_cmd(db, tmp_path / "out", glue_dir, trials=3)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    storage = f"sqlite:///{db}"
    victim = None
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            time.sleep(0.3)
            try:
                trials = optuna.load_study(study_name="k", storage=storage).trials
            except (KeyError, optuna.exceptions.StorageInternalError):
                continue  # not created yet, or locked by the writer
            done = [t for t in trials if t.state == TrialState.COMPLETE and t.user_attrs.get("trained")]
            running = [t for t in trials if t.state == TrialState.RUNNING and t.user_attrs.get("trained")]
            if done and running:
                victim = running[0].number
                os.kill(proc.pid, signal.SIGKILL)
                break
            if proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert victim is not None, "never caught a trial mid-training"
    before = {t.number: (t.state, t.values, t.params) for t in optuna.load_study(study_name="k", storage=storage).trials
              if t.state == TrialState.COMPLETE}
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    study = optuna.load_study(study_name="k", storage=storage)
    by_number = {t.number: t for t in study.trials}
    # every finished trial kept as it was
    for n, (state, values, params) in before.items():
        assert (by_number[n].state, by_number[n].values, by_number[n].params) == (state, values, params)
    # the interrupted one is FAIL with its reason and was run again with the same parameters
    v = by_number[victim]
    assert v.state == TrialState.FAIL and "interrupted" in v.user_attrs["fail_reason"]
    reruns = [t for t in study.trials if t.user_attrs.get("retry_of") == victim]
    assert len(reruns) == 1 and reruns[0].params == v.params and reruns[0].state == TrialState.COMPLETE
    assert trained_configurations(study) == 3


def test_memory_stays_flat_over_many_trials(tmp_path, glue_dir):
    psutil = pytest.importorskip("psutil")
    proc = psutil.Process()
    rss = []

    def factory(ctx):
        def trainer(task, spec, args, **kw):
            r = train(task, spec, args, **kw)
            rss.append(proc.memory_info().rss)
            return r
        return Objective(ctx, trainer=trainer)

    run_search(_settings(tmp_path, glue_dir, "m", trials=20, budget="1M", max_train_samples=32, max_eval_samples=16),
               objective_factory=factory)
    assert len(rss) == 20
    growth_mb = (rss[-1] - rss[0]) / 2**20
    assert growth_mb < 200, f"resident memory grew {growth_mb:.0f} MB over 20 trials"


def test_no_unsafe_deserialisation_in_the_package():
    """Weights via safetensors, configs via json / yaml.safe_load: nothing user-supplied is unpickled."""
    import re
    from pathlib import Path

    import autolor2c

    bad = re.compile(r"\bpickle\b|torch\.load\(|yaml\.load\(|yaml\.unsafe_load|weights_only\s*=\s*False")
    hits = [f"{p}:{n}" for p in Path(autolor2c.__file__).parent.rglob("*.py")
            for n, line in enumerate(p.read_text().splitlines(), 1) if bad.search(line)]
    assert hits == []


def test_dashboard_binds_loopback_by_default():
    from autolor2c.cli import build_parser

    args = build_parser().parse_args(["dashboard"])
    assert args.host == "127.0.0.1"


def test_memory_is_collected_after_a_trained_trial_but_not_after_an_over_budget_draw(monkeypatch):
    """A collection with torch loaded costs ~0.5 s: after a draw that trained nothing it is pure waste, after
    a trained trial it frees the model before the next one (what Optuna's gc_after_trial did for both)."""
    import gc

    from autolor2c.search import record
    from autolor2c.search.run.objective import failure_recording

    calls = []
    monkeypatch.setattr(gc, "collect", lambda *a: calls.append(1) or 0)

    def objective(trial):
        trial.set_user_attr(record.TRAINED, trial.number % 2 == 1)  # odd trials train, even ones are over budget
        return 0.5, 100.0

    study = optuna.create_study(directions=["maximize", "minimize"])
    study.optimize(failure_recording(objective), n_trials=4)
    assert len(calls) == 2
