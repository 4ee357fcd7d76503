"""The headline command end to end on a small SST-2 slice: study, budget constraint, resume, artifacts,
export (own folder, YAML/JSON, stock PEFT LoRA), the dashboard's HTTP API, bad flags."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import optuna
import pytest
import torch
import yaml

from autolor2c.cli import main
from autolor2c.search.fidelity import Fidelity
from autolor2c.search.front import trained_configurations
from autolor2c.search.run import Objective, SearchSettings, run_search
from autolor2c.train import count_adapter_params, train

SMALL = ["--min-steps", "0", "--max-train-samples", "96", "--max-eval-samples", "64", "--max-length", "32",
         "--no-progress", "--epochs", "1"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory, glue_dir):
    tmp = tmp_path_factory.mktemp("search")
    storage = f"sqlite:///{tmp}/studies.db"
    args = ["search", "--task", "sst2", "--budget", "0.05M", "--trials", "4", "--seeds", "2", "--baseline-seeds", "2",
            "--storage", storage,
            "--out", str(tmp / "out"), "--data-dir", str(glue_dir), "--study-name", "t", *SMALL]
    assert main(args) == 0
    return tmp, storage, args


def test_search_writes_every_artifact(searched):
    tmp, storage, _ = searched
    out = tmp / "out"
    for name in ("best_config.yaml", "pareto.html", "hypervolume.html", "importances.json", "report.md",
                 "adapter/lor2c_config.json", "adapter/lor2c_model.safetensors", "adapter/README.md", "retrain.json",
                 "trials.csv", "importances.html", "adapter.zip"):
        assert (out / name).is_file(), name
    study = optuna.load_study(study_name="t", storage=storage)
    # the same files are the study's artifacts in the store beside the database (the dashboard's)
    uploaded = {m.filename for m in optuna.artifacts.get_all_artifact_meta(study)}
    assert {"report.md", "best_config.yaml", "adapter.zip", "pareto.html", "trials.csv"} <= uploaded
    assert (tmp / "artifacts").is_dir()
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["accuracy", "trainable_params"]
    assert trained_configurations(study) == 4
    # the cost by stage, the baselines' one-off apart from the search's own trials and seeds (the baselines
    # start beside the other worker's last trial when the first worker's trials end first)
    stages = study.user_attrs["stage_wall_s"]
    assert {"trials", "baselines", "seeds"} <= set(stages) <= {"trials", "baselines", "seeds", "baselines_beside_trials"}
    assert stages["trials"] > 0 and stages["baselines"] + stages.get("baselines_beside_trials", 0) > 0
    assert "this session by stage: trials" in (out / "report.md").read_text()
    for t in study.trials:
        if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("feasible"):
            assert t.values[1] <= 50_000
            assert {"cost_s", "cpu_s", "final_structure", "history", "rungs", "plan"} <= set(t.user_attrs)
    # the built-ins the space expresses and the budget fits were the first trials, at the top rung, once each
    builtins = [t.user_attrs.get("builtin") for t in study.trials[:3]]
    assert builtins == ["lor2c", "sharelor2c", "imlor2c"]
    assert sum(1 for t in study.trials if t.user_attrs.get("builtin")) == 3
    assert all(t.user_attrs["rungs"][0]["fraction"] == 1.0 for t in study.trials[:3])
    retrain = json.loads((out / "retrain.json").read_text())
    pick = retrain["pick"]
    assert pick["seeds"] == 2 and len(pick["runs"]) == 2 and 0 <= pick["dev_std"]
    t = study.trials[pick["trial"]]
    # seed 0 is the trial itself (not trained again); seed 1 trained the same configuration with the same count
    assert pick["runs"][0]["trial"] == t.number and pick["runs"][0]["selection"] == t.values[0]
    assert all(r["params"] == int(t.values[1]) for r in pick["runs"])
    assert all(0 <= r["selection"] <= 1 and 0 <= r["dev"] <= 1 for r in pick["runs"])
    assert not (out / "retrain" / f"trial{t.number}-seed0").exists() and (out / "retrain" / f"trial{t.number}-seed1").is_dir()
    # the study's adapter/ is the pick's trial's own model, byte for byte
    own = out / "trials" / f"trial{t.number}" / "adapter"
    assert t.user_attrs["adapter_dir"] == str(own.resolve())
    assert (own / "lor2c_model.safetensors").read_bytes() == (out / "adapter" / "lor2c_model.safetensors").read_bytes()
    # the noise is the cached baselines' seeds (the head alone left out): the best trains none to measure it
    noise = retrain["noise"]
    assert noise["trial"] == retrain["best"]["trial"] and noise["source"] == "cached baseline seeds"
    assert {"lor2c", "sharelor2c", "imlor2c", "lora"} <= set(noise["baselines"]) and "head-only" not in noise["baselines"]
    assert retrain["best"]["seeds"] == (2 if retrain["best"]["trial"] == pick["trial"] or retrain["best"]["builtin"]
                                        else 1)
    assert all(b["seeds"] == 2 for b in retrain["baselines"])
    # the pick is the smallest front point tied with the best within that noise (the best itself among them)
    from autolor2c.search.front import tied_with_the_best

    tied = tied_with_the_best(study)
    assert retrain["best"]["trial"] in {x.number for x in tied}
    assert pick["trial"] == min(tied, key=lambda x: (x.values[1], -x.values[0])).number
    report = (out / "report.md").read_text()
    assert "Pareto front" in report and "The pick beside the baselines" in report and "Cost" in report
    # the built-ins, the head alone and LoRA sit beside the front, with the input-blind score and a verdict
    for name in ("lor2c", "imlor2c", "head-only", "lora"):
        assert f"baseline `{name}`" in report, name
    assert "input-blind" in report and "**Verdict.**" in report
    # a verdict by name: a tiny run cannot tell the pick from the baselines, and says so instead of naming a winner
    sentence = report.split("**Verdict.** ")[1].split("\n")[0]
    assert sentence.startswith(("The search", "The pick is the built-in", "Inconclusive", "The comparison cannot"))
    assert sentence == study.user_attrs["verdict"]["sentence"]
    assert "reference point: the head alone" in report
    cfg = yaml.safe_load((out / "best_config.yaml").read_text())
    assert cfg["method"] in ("lor2c", "lora")
    from optuna_dashboard import get_note

    assert "Pareto front" in get_note(study)


def test_same_command_continues_the_study(searched, glue_dir):
    tmp, storage, args = searched
    before = optuna.load_study(study_name="t", storage=storage).trials
    more = list(args)
    more[more.index("--trials") + 1] = "6"
    more[more.index("--seeds") + 1] = "0"
    assert main(more) == 0
    after = optuna.load_study(study_name="t", storage=storage).trials
    assert trained_configurations(optuna.load_study(study_name="t", storage=storage)) == 6
    assert [t.params for t in after[: len(before)]] == [t.params for t in before]
    # asking again for 6 runs nothing more
    assert main(more) == 0
    assert len(optuna.load_study(study_name="t", storage=storage).trials) == len(after)


def _recording_objective(record):
    def factory(ctx):
        def trainer(task, spec, args, **kw):
            record.append(count_adapter_params(spec, ctx.shape)["peak"])
            return train(task, spec, args, **kw)
        return Objective(ctx, trainer=trainer)
    return factory


def test_retrain_defaults_to_the_searchs_own_pick(searched, tmp_path, monkeypatch):
    import autolor2c.search.results.retrain as retrain_mod
    from autolor2c.search.front import feasible_trials, pick_trial

    _, storage, _ = searched
    copy = f"sqlite:///{tmp_path}/copy.db"
    optuna.copy_study(from_study_name="t", from_storage=storage, to_storage=copy, to_study_name="c")
    study = optuna.load_study(study_name="c", storage=copy)
    other = next(t for t in feasible_trials(study) if t.number != pick_trial(study, "best").number)
    study.set_user_attr("retrain", {**study.user_attrs["retrain"], "trial": other.number})
    asked = []
    monkeypatch.setattr(retrain_mod, "train_seeds", lambda st, ctx, t, seeds, progress, role="": asked.append(
        t.number) or {"trial": t.number, "seeds": 1, "dev_mean": 0.5, "dev_std": None, "selection_mean": t.values[0],
                      "runs": [{"selection": t.values[0]}]})
    for extra, want in (([], other.number), (["--pick", "best"], pick_trial(study, "best").number),
                        (["--trial", str(other.number)], other.number)):
        assert main(["retrain", "--study", "c", "--storage", copy, "--no-progress", *extra]) == 0
        assert asked[-1] == want, extra
    # smallest-tied picks as the search does (the best's seeds, then each candidate's: tested in test_pick)
    rules = []
    real = retrain_mod.pick_over_seeds
    monkeypatch.setattr(retrain_mod, "pick_over_seeds", lambda st, ctx, rule, seeds, progress=False: rules.append(rule)
                        or real(st, ctx, rule, seeds, progress))
    asked.clear()
    assert main(["retrain", "--study", "c", "--storage", copy, "--no-progress", "--pick", "smallest-tied"]) == 0
    # with the noise the search recorded from the cached baseline seeds: the best trains no seed unless picked
    assert rules == ["smallest-tied"] and asked[-1] == pick_trial(study, "smallest-tied").number
    assert pick_trial(study, "best").number not in asked[:-1]
    assert main(["retrain", "--study", "c", "--storage", copy, "--no-progress", "--pick", "knee"]) == 0
    assert rules == ["smallest-tied"]


def test_over_budget_configurations_are_never_trained(tmp_path, glue_dir):
    trained: list[int] = []
    settings = SearchSettings(task="sst2", budget="12K", data_dir=str(glue_dir), storage=f"sqlite:///{tmp_path}/s.db",
                              study_name="b", trials=8, max_train_samples=64, max_eval_samples=32, max_length=24,
                              seeds=0, fidelity=Fidelity.off(), progress=False, sampler="random", min_steps=0,
                              out=str(tmp_path / "out"))
    study, ctx, objective, _ = run_search(settings, objective_factory=_recording_objective(trained))
    assert all(n <= 12_000 for n in trained)
    infeasible = [t for t in study.trials if t.user_attrs.get("feasible") is False]
    assert infeasible, "the random space should propose over-budget configurations at this budget"
    for t in infeasible:  # untrained, no made-up score, not counted as a trained configuration
        assert t.user_attrs["trained"] is False and "rungs" not in t.user_attrs and t.values is None
        assert t.constraints["budget"] > 0
        assert t.user_attrs["planned_params"]["peak"] > 12_000
        assert t.duration.total_seconds() < 2.0
    assert len(trained) == len([t for t in study.trials if t.user_attrs.get("trained")])
    assert trained_configurations(study) == 8  # --trials counts trained configurations only


def test_budget_that_admits_nothing_trains_nothing(tmp_path, glue_dir, capsys):
    rc = main(["search", "--task", "sst2", "--budget", "100", "--trials", "3", "--storage", f"sqlite:///{tmp_path}/n.db",
               "--out", str(tmp_path / "o"), "--data-dir", str(glue_dir), "--seeds", "3", *SMALL])
    assert rc == 1  # a search that trains nothing says so and fails
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "trained nothing" in err[0] and "fits the budget" in err[0]
    study = optuna.load_study(study_name=optuna.get_all_study_names(f"sqlite:///{tmp_path}/n.db")[0],
                              storage=f"sqlite:///{tmp_path}/n.db")
    assert all(t.user_attrs.get("trained") is False for t in study.trials)
    assert not (tmp_path / "o" / "adapter").exists()


def test_export_formats(searched, glue_dir, tmp_path, capsys):
    tmp, storage, _ = searched
    base = ["--study", "t", "--storage", storage]
    assert main(["export", *base, "--format", "lor2c", "--out", str(tmp_path / "best")]) == 0
    assert "README.md (model card)" in capsys.readouterr().out
    card = (tmp_path / "best" / "README.md").read_text()
    retrain = json.loads((tmp / "out" / "retrain.json").read_text())
    runs = retrain["pick"]["runs"]  # the pick of the continued study: its trial, and any seeds trained for it
    assert f"over {len(runs)} seed(s): " + ", ".join(f"seed {r['seed']} {r['dev']:.4f}" for r in runs) in card
    # the old name still works and says what it writes
    assert main(["export", *base, "--format", "peft", "--out", str(tmp_path / "peft")]) == 0
    assert "deprecated" in capsys.readouterr().err and (tmp_path / "peft" / "lor2c_config.json").is_file()
    scores = []
    for folder in (tmp / "out" / "adapter", tmp_path / "best", tmp_path / "peft"):
        assert main(["predict", "--adapter", str(folder), "--data-dir", str(glue_dir), "--max-eval-samples", "64"]) == 0
        scores.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["primary_score"])
    assert scores[0] == scores[1] == scores[2]
    assert main(["export", *base, "--format", "yaml", "--out", str(tmp_path / "y")]) == 0
    assert main(["export", *base, "--format", "json", "--out", str(tmp_path / "j")]) == 0
    y = yaml.safe_load((tmp_path / "y" / "config.yaml").read_text())
    assert y == json.loads((tmp_path / "j" / "config.json").read_text())
    # the exported config trains again through `autolor2c train`
    from autolor2c.train import read_config_file

    spec, overrides = read_config_file(str(tmp_path / "y" / "config.yaml"))
    assert spec.method == y["method"] and overrides == y["train"]


def test_lora_export_loads_in_stock_peft(tmp_path):
    """A LoR2C adapter with an injected layer -> stock PEFT folder; PeftModel reproduces the LoRA part."""
    from peft import PeftModel

    from autolor2c import export
    from autolor2c.lor2c import LoR2CConfig, get_lor2c_model
    from autolor2c.train import load_backbone

    w = get_lor2c_model(load_backbone(None, 2, seed=1), LoR2CConfig(rank=4, dropout=0.0, inject_count=1))
    with torch.no_grad():
        for p in w.adapter_parameters():
            p.normal_(0, 0.05)
    w.inject()
    for lora in w.injections.values():
        with torch.no_grad():
            lora.B.normal_(0, 0.05)
    folder, caveat = export.export_lora(w, load_backbone(None, 2, seed=2), tmp_path / "lora", None)
    assert "cannot express" in caveat and (folder / "adapter_model.safetensors").is_file()
    cfg = json.loads((folder / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "LORA" and cfg["layers_to_transform"] == w.lor2c_config.injected
    peft_model = PeftModel.from_pretrained(load_backbone(None, 2, seed=3), str(folder)).eval()
    ids = {"input_ids": torch.tensor([[101, 2023, 3185, 2001, 2307, 102]]), "attention_mask": torch.ones(1, 6, dtype=torch.long)}
    with torch.no_grad():
        for b in w.bypasses:
            b.B.zero_()  # what LoRA can express: the model without its bypasses
        want = w.eval()(**ids).logits
        got = peft_model(**ids).logits
    assert torch.allclose(got, want, atol=1e-5)
    # nothing injected -> a clear refusal
    from autolor2c.errors import UserError

    plain = get_lor2c_model(load_backbone(None, 2), LoR2CConfig(rank=2))
    with pytest.raises(UserError, match="no injected layers"):
        export.export_lora(plain, load_backbone(None, 2), tmp_path / "x", None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_serves_the_study(searched):
    tmp, storage, _ = searched
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "autolor2c.cli", "dashboard", "--storage", storage, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, body = time.time() + 60, None
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    body = json.loads(r.read())
                break
            except OSError:
                if proc.poll() is not None:
                    break
                time.sleep(0.5)
        assert body is not None, proc.stderr.read() if proc.poll() is not None else "no answer"
        studies = {s["study_name"]: s for s in body["study_summaries"]}
        assert "t" in studies
        sid = studies["t"]["study_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{sid}?after=0", timeout=10) as r:
            detail = json.loads(r.read())
        assert len(detail["trials"]) >= 4
        assert detail["objective_names"] == ["accuracy", "trainable_params"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


BAD_SEARCH = [
    (["--budget", "10MB"], "10MB"), (["--budget", "-5"], "-5"), (["--budget", "abc"], "abc"), (["--budget", "0"], "'0'"),
    (["--budget", "200%"], "200%"), (["--task", "sst5"], "sst5"), (["--trials", "0"], "'0'"), (["--trials", "x"], "'x'"),
    (["--timeout", "-1"], "-1"), (["--sampler", "cmaes"], "cmaes"), (["--space", "nope.yaml"], "nope.yaml"),
    (["--storage", "ftp://x"], "ftp://x"), (["--seed", "-2"], "-2"), (["--seeds", "many"], "many"),
    (["--pick", "worst"], "worst"), (["--fidelity-rungs", "0.5,2"], "0.5,2"), (["--reduction-factor", "0"], "'0'"),
    (["--no-multi-fidelity", "--fidelity-rungs", "0.5,1"], "--fidelity-rungs"), (["--model", "./no/such/model"], "no/such/model"),
    (["--data-dir", "/no/such/dir"], "/no/such/dir"), (["--epochs", "0"], "'0'"), (["--max-length", "4"], "'4'"),
    (["--backbone-dropout", "1"], "'1'"), (["--backbone-dropout", "-0.1"], "-0.1"),
    # accepted by the flag's type, refused by the training run's own checks, still before any study exists
    (["--selection-fraction", "1"], "--selection-fraction"), (["--max-length", "9000"], "--max-length 9000"),
    (["--min-rung-steps", "0"], "'0'"), (["--batch-size", "0"], "'0'"), (["--max-train-samples", "0"], "'0'"),
    (["--reduction-factor", "1"], "'1'"),
    # a search takes a GLUE task: custom data files are refused, never silently ignored
    (["--task", "custom"], "train` only"), (["--train-file", "x.csv"], "--train-file"),
]


@pytest.mark.parametrize("extra,needle", BAD_SEARCH)
def test_bad_search_flags_exit_2_with_one_line(tmp_path, extra, needle, glue_dir):
    db = tmp_path / "s.db"
    args = ["search", "--storage", f"sqlite:///{db}", "--data-dir", str(glue_dir), "--no-progress", *extra]
    p = subprocess.run([sys.executable, "-m", "autolor2c.cli", *args], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    assert p.returncode == 2, (p.returncode, p.stderr[-1500:])
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert needle in lines[0]
    if db.exists():  # nothing half-made: no study was created
        assert optuna.get_all_study_names(f"sqlite:///{db}") == []


@pytest.mark.parametrize("args,needle", [
    (["show", "--study", "nope"], "nope"), (["retrain", "--study", "t", "--trial", "999"], "999"),
    (["export", "--study", "t", "--format", "onnx", "--out", "x"], "onnx"), (["export", "--study", "nope", "--format", "yaml", "--out", "x"], "nope"),
    (["retrain", "--study", "t", "--seeds", "0"], "'0'"),
    (["export", "--study", "t", "--format", "lor2c", "--trial", "999", "--out", "x"], "999"),
])
def test_bad_flags_of_other_commands(searched, args, needle, tmp_path):
    tmp, storage, _ = searched
    before = [(t.number, t.state, t.values) for t in optuna.load_study(study_name="t", storage=storage).trials]
    p = subprocess.run([sys.executable, "-m", "autolor2c.cli", *args, "--storage", storage], capture_output=True,
                       text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 2, p.stderr[-1500:]
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], p.stderr
    after = [(t.number, t.state, t.values) for t in optuna.load_study(study_name="t", storage=storage).trials]
    assert after == before


def test_backbone_dropout_reaches_every_trial_and_every_seed(tmp_path, glue_dir):
    from autolor2c.search.results import train_seeds

    seen = []

    def factory(ctx):
        def trainer(task, spec, args, **kw):
            seen.append(args.backbone_dropout)
            return train(task, spec, args, **kw)
        return Objective(ctx, trainer=trainer)

    settings = SearchSettings(task="sst2", budget="12K", data_dir=str(glue_dir), storage=f"sqlite:///{tmp_path}/s.db",
                              study_name="d", trials=2, max_train_samples=64, max_eval_samples=32, max_length=24,
                              seeds=0, fidelity=Fidelity.off(), progress=False, sampler="random", min_steps=0,
                              backbone_dropout=0.1, out=str(tmp_path / "r"))
    study, ctx, _, _ = run_search(settings, objective_factory=factory)
    assert seen and set(seen) == {0.1}
    assert study.user_attrs["identity"]["backbone_dropout"] == 0.1
    feasible = [t for t in study.trials if t.values is not None]
    assert feasible
    train_seeds(study, ctx, feasible[0], 2, progress=False)
    metrics = json.loads((tmp_path / "r" / "retrain" / f"trial{feasible[0].number}-seed1" / "metrics.json").read_text())
    assert metrics["train_args"]["backbone_dropout"] == 0.1 and metrics["train_args"]["seed"] == 1


def test_a_never_promoted_search_is_refused_before_training(tmp_path, glue_dir, capsys):
    db = tmp_path / "p.db"
    rc = main(["search", "--task", "sst2", "--budget", "0.1M", "--trials", "1", "--storage", f"sqlite:///{db}",
               "--data-dir", str(glue_dir), "--fidelity-rungs", "0.5,1", "--no-builtins-first", "--out",
               str(tmp_path / "o"), *SMALL])
    assert rc == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "--trials" in err[0] and "top rung" in err[0]
    assert not db.exists() or optuna.get_all_study_names(f"sqlite:///{db}") == []


def test_optuna_private_names_only_in_their_module():
    """Optuna's private internals (trial ids, the study's storage, system attrs, ``optuna.x._y`` modules)
    are used in search/optuna_internals.py alone, where each use says why."""
    import re
    from pathlib import Path

    import autolor2c

    private = re.compile(r"\._trial_id\b|\._study_id\b|\._storage\b|system_attr|\bstorage\.(get|set|create)_trial"
                         r"|\boptuna(\.\w+)*\._\w+|\bfrom optuna(\.\w+)*\._")
    package = Path(autolor2c.__file__).parent
    found = [f"{f.relative_to(package)}:{n}: {line.strip()}" for f in sorted(package.rglob("*.py"))
             if f.name != "optuna_internals.py"
             for n, line in enumerate(f.read_text().splitlines(), 1) if private.search(line)]
    assert found == []
    assert private.search("study._storage.get_trial(t._trial_id)") and private.search("from optuna.study._x import y")


def test_a_search_whose_every_trial_fails_exits_non_zero_in_one_line(tmp_path, glue_dir, capsys, monkeypatch):
    import autolor2c.search.run.objective as objective_mod

    def boom(self, trial):
        raise RuntimeError("a bug in every trial")

    monkeypatch.setattr(objective_mod.Objective, "__call__", boom)
    # one worker: a second process would not carry the monkeypatched objective
    rc = main(["search", "--task", "sst2", "--budget", "1M", "--trials", "2", "--storage", f"sqlite:///{tmp_path}/f.db",
               "--out", str(tmp_path / "o"), "--data-dir", str(glue_dir), "--workers", "1", *SMALL])
    assert rc == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "every trained trial failed" in err[0] and "a bug in every trial" in err[0]
