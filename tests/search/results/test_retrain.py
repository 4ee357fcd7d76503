"""The pick's other seeds: trained beside its trial (seed 0), in one 1-thread worker process per core."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

import autolor2c.search.results.retrain as retrain_mod
from autolor2c.search import record
from autolor2c.search.fidelity import Fidelity
from autolor2c.search.run import SearchSettings, run_search


def test_the_pool_yields_runs_in_seed_order_and_starts_no_more_after_a_failure(tmp_path, monkeypatch):
    """Each run is handed over (recorded) once it and the runs before it are done, whatever order the worker
    processes finish them in, and a failing run stops the rest: the runs not yet started never start."""
    import pool_fakes

    monkeypatch.setattr(retrain_mod, "parallel_workers", lambda n: 2)
    monkeypatch.setattr(retrain_mod, "_one_run", pool_fakes.timed_run)
    ctx = SimpleNamespace(task=None, settings=SimpleNamespace(
        model=None, data_dir=None, train_args=lambda plan, seed, progress: {"seed": seed, "dir": str(tmp_path)}))
    jobs = [(None, {}, seed, None) for seed in range(20)]
    handed = []
    with pytest.raises(RuntimeError, match="seed 2 failed"):
        for r in retrain_mod._runs(ctx, jobs, False):
            handed.append(r["seed"])
    assert handed == [0, 1]   # seed 1 finished first, and waited for seed 0
    started = {int(p.name.split("-")[1]) for p in tmp_path.glob("started-*")}
    assert {0, 1, 2} <= started and len(started) <= 12, sorted(started)


def test_seeds_in_parallel_worker_processes_give_what_one_process_gives(tmp_path, glue_dir, monkeypatch):
    """The missing seeds of a configuration train in one 1-thread process per core (faster on a CPU,
    bench/speed/workers.py); the results must be those of one process training them in turn."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    settings = SearchSettings(task="sst2", budget="1M", data_dir=str(glue_dir), storage=f"sqlite:///{tmp_path}/p.db",
                              study_name="p", trials=1, max_train_samples=64, max_eval_samples=32, max_length=24,
                              seeds=0, fidelity=Fidelity.off(), progress=False, min_steps=0, out=str(tmp_path / "o"))
    study, ctx, _, _ = run_search(settings)
    t = [t for t in study.trials if t.values is not None][0]
    assert retrain_mod.parallel_workers(2) == min(2, len(os.sched_getaffinity(0)))  # one process per core
    parallel = retrain_mod.train_seeds(study, ctx, t, 3, progress=False)
    study.set_user_attr(record.SEED_RUNS, {})
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # a pinned thread count: one process
    assert retrain_mod.parallel_workers(2) == 1
    sequential = retrain_mod.train_seeds(study, ctx, t, 3, progress=False)
    key = [(r["seed"], r["selection"], r["dev"], r["params"]) for r in parallel["runs"]]
    assert key == [(r["seed"], r["selection"], r["dev"], r["params"]) for r in sequential["runs"]]
    assert [r["seed"] for r in parallel["runs"]] == [0, 1, 2]
    # each worker trains with one thread (two workers with every core each oversubscribe the CPU)
    assert [r["threads"] for r in parallel["runs"][1:]] == [1, 1]
    assert [r["threads"] for r in sequential["runs"][1:]] == [2, 2]
