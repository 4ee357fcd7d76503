"""Reports offline and in optuna-dashboard, checked in a real headless browser (Debian's chromium and
chromedriver, driven by selenium): the study page shows the Pareto chart, the notes and the artifacts;
pareto.html opens from disk with no network. Screenshots go to $AUTOLOR2C_ARTIFACTS_DIR (CI keeps them)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from autolor2c.lor2c import LoR2CConfig
from autolor2c.search.results import artifact_dir, upload_study_artifacts
from autolor2c.search.fidelity import Fidelity
from autolor2c.search.results import write_artifacts
from autolor2c.search.front import pareto_front

REPO = Path(__file__).resolve().parents[3]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"
BUDGET = 50_000


def _objective(trial: optuna.Trial):
    rank = trial.suggest_int("rank", 1, 16)
    lr = trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
    params = rank * 6 * 768
    trial.set_user_attr("feasible", params <= BUDGET)
    trial.set_user_attr("final_structure", {"method": "lor2c", "spans": [[0, 1], [4, 4]], "ranks": [rank, rank],
                                            "injected": [], "share_a": False})
    adapter = LoR2CConfig(rank=rank, spans=[[0, 1], [4, 4]]).to_dict()
    trial.set_user_attr("plan", {"method": "lor2c", "num_layers": 6, "adapter": adapter, "train": {"learning_rate": lr}})
    trial.set_user_attr("cost_s", 1.0)
    return 0.7 + 0.01 * rank - 2 * abs(lr - 2e-3), params


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    """A real two-objective study with autolor2c's reports, notes and artifacts (no training)."""
    tmp = tmp_path_factory.mktemp("dash")
    storage = f"sqlite:///{tmp}/studies/autolor2c.db"
    (tmp / "studies").mkdir()
    study = optuna.create_study(study_name="browser", storage=storage, directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_metric_names(["accuracy", "trainable_params"])
    study.optimize(_objective, n_trials=12)
    ctx = SimpleNamespace(task=SimpleNamespace(name="sst2", primary_metric="accuracy"), budget=BUDGET,
                          shape=SimpleNamespace(head_params=148_610), space=SimpleNamespace(name="lor2c_full"),
                          settings=SimpleNamespace(pick="best", selection_fraction=0.1), trivial=0.5092, trivial_dev=0.4908,
                          full_steps=2043, n_train_full=65_349, fidelity=Fidelity((1 / 9, 1 / 3, 1.0), 3.0))
    out = tmp / "studies" / "browser"
    picked = max((t for t in study.best_trials if t.user_attrs["feasible"]), key=lambda t: t.values[0])
    write_artifacts(study, ctx, out, picked, 1.0)
    (out / "adapter").mkdir()
    (out / "adapter" / "lor2c_config.json").write_text("{}")
    ids = upload_study_artifacts(study, out, storage)
    return storage, out, ids, study


def test_html_plots_carry_plotly_js_inline(small_study):
    _, out, _, _ = small_study
    for name in ("pareto.html", "hypervolume.html", "importances.html"):
        text = (out / name).read_text()
        # no <script src=...> at all (plotly.js's own code mentions cdn.plot.ly for topojson; no tag loads it)
        assert re.findall(r"<script[^>]*\bsrc\s*=", text) == [], name
        assert "plotly.js v" in text and len(text) > 1_000_000, name  # the library itself, inline
    assert (out / "trials.csv").read_text().splitlines()[0].startswith("number,values_accuracy,values_trainable_params")


def test_artifacts_upload_once_per_file(small_study):
    storage, out, ids, study = small_study
    assert {"report.md", "best_config.yaml", "pareto.html", "trials.csv", "adapter.zip"} <= set(ids)
    again = upload_study_artifacts(study, out, storage)
    assert again == ids  # a second upload overwrites, it does not add
    metas = optuna.artifacts.get_all_artifact_meta(optuna.load_study(study_name="browser", storage=storage))
    assert sorted(m.filename for m in metas) == sorted(ids)
    assert (artifact_dir(storage) / ids["report.md"]).read_text() == (out / "report.md").read_text()
    # a file deleted in the dashboard (its metadata set to null there) is uploaded anew, not written blind
    study._storage.set_study_system_attr(study._study_id, f"artifacts:{ids['trials.csv']}", "null")
    fresh = upload_study_artifacts(study, out, storage)
    assert fresh["trials.csv"] != ids["trials.csv"] and fresh["report.md"] == ids["report.md"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def browser(tmp_path):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.fail("the browser test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not download a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshots_dir(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("AUTOLOR2C_ARTIFACTS_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _wait_for(driver, script: str, timeout: float = 60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.5)
    text = driver.execute_script("return document.body.innerText;")
    raise AssertionError(f"timed out waiting for: {script}; the page says: {text[:600]!r}")


def _scroll_to_text(driver, text: str) -> None:
    """Bring the first element showing ``text`` into view (for the screenshot)."""
    driver.execute_script(
        "const it = document.evaluate(`//*[text()[contains(., '${arguments[0]}')]]`, document, null,"
        " XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue; if (it) it.scrollIntoView();", text)
    time.sleep(0.5)


def test_dashboard_study_page_renders_chart_notes_and_artifacts(small_study, browser, tmp_path):
    """optuna-dashboard 0.21 shows saved plotly figures and artifacts on the study's history page and the note
    on its Note page (/note); both are checked where a user finds them."""
    storage, _, ids, study = small_study
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "autolor2c.cli", "dashboard", "--storage", storage, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5).read()
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() is not None else "no answer"
                time.sleep(0.5)
        page = f"http://127.0.0.1:{port}/dashboard/studies/{study._study_id}"
        browser.get(page)
        # our saved figures (pareto with its own title, hypervolume) beside the dashboard's own charts
        titles = _wait_for(browser, "const t = Array.from(document.querySelectorAll('.js-plotly-plot .gtitle'))"
                                    ".map(e => e.textContent); return t.length >= 2 ? t : null;")
        assert any("accuracy vs trainable adapter parameters" in t for t in titles), titles
        assert any("ypervolume" in t for t in titles), titles
        # the study's artifacts are listed by name
        _wait_for(browser, "return document.body.innerText.includes('report.md');")
        for name in ("best_config.yaml", "adapter.zip", "trials.csv", "pareto.html"):
            assert name in browser.execute_script("return document.body.innerText;"), name
        _scroll_to_text(browser, "accuracy vs trainable")
        browser.save_screenshot(str(_screenshots_dir(tmp_path) / "dashboard_study.png"))
        _scroll_to_text(browser, "report.md")
        browser.save_screenshot(str(_screenshots_dir(tmp_path) / "dashboard_artifacts.png"))
        # the note: the front table, rendered from markdown (a real <table>, the front's trials in it)
        browser.get(page + "/note")
        _wait_for(browser, "return document.body.innerText.includes('Pareto front');")
        rows = _wait_for(browser, "const r = Array.from(document.querySelectorAll('table tr')).map(e => e.innerText);"
                                  "return r.length > 1 ? r : null;")
        front = {t.number for t in pareto_front(study)}
        shown = {int(r.split()[0]) for r in rows[1:] if r.split() and r.split()[0].isdigit()}
        assert shown == front, (shown, front)
        browser.save_screenshot(str(_screenshots_dir(tmp_path) / "dashboard_note.png"))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_pareto_html_renders_from_disk_without_network(small_study, browser, tmp_path):
    _, out, _, study = small_study
    browser.get((out / "pareto.html").as_uri())
    _wait_for(browser, "return document.querySelectorAll('.js-plotly-plot .main-svg').length > 0;", timeout=30)
    points = browser.execute_script("return document.querySelectorAll('.js-plotly-plot .scatterlayer .point').length;")
    assert points == len([t for t in study.trials if t.user_attrs["feasible"]])  # every trained trial
    browser.save_screenshot(str(_screenshots_dir(tmp_path) / "pareto_offline.png"))
