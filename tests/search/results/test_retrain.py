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
        model=None, data_dir=None, seed=0, train_args=lambda plan, seed, progress: {"seed": seed, "dir": str(tmp_path)}))
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


def test_runs_start_as_cores_free_and_come_back_in_order():
    """Seeds start only while ``limit()`` allows (another worker's trial holds a core), more once it rises,
    and each result comes back in the jobs' order; a failing run starts no later one."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    lock, state = threading.Lock(), {"now": 0, "most_before": 0, "most_after": 0, "done": 0}
    freed = threading.Event()

    def job(k):
        with lock:
            state["now"] += 1
            key = "most_after" if freed.is_set() else "most_before"
            state[key] = max(state[key], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
            state["done"] += 1
            if state["done"] == 3:
                freed.set()   # the other worker's last trial ends here
        if k == "fail":
            raise RuntimeError("failed")
        return k

    retrain_mod.POLL_S, saved = 0.01, retrain_mod.POLL_S
    try:
        with ThreadPoolExecutor(4) as pool:
            got = list(retrain_mod.as_cores_free(lambda k: pool.submit(job, k), list(range(8)),
                                                 lambda: 2 if freed.is_set() else 1))
            assert got == list(range(8))
            assert state["most_before"] == 1 and state["most_after"] == 2
            submitted = []
            with pytest.raises(RuntimeError, match="failed"):
                for _ in retrain_mod.as_cores_free(lambda k: submitted.append(k) or pool.submit(job, k),
                                                   [0, "fail", 2, 3, 4, 5], lambda: 1):
                    pass
            assert submitted == [0, "fail"]
    finally:
        retrain_mod.POLL_S = saved
