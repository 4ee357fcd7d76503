"""`export`: LoR2C's own folder with a portable base model name and a model card (front matter, labels,
training, offline load); old (PEFT-named) folders export and load too; on a study, --pick/--trial reach every
format, a trial's own or retrained adapter exports by number, and lora says what it can and cannot hold."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
import yaml

from autolor2c.cli import main
from autolor2c.export import export_folder
from autolor2c.lor2c import LoR2CConfig, LoR2CModel, get_lor2c_model
from autolor2c.train import save_adapter
from tests.conftest import tiny_model

RUN_META = {"task": "sst2", "task_spec": None, "model": None, "num_labels": 2, "max_length": 32, "seed": 0,
            "primary_metric": "accuracy", "primary_score": 0.75, "scores": {"accuracy": 0.75}, "trainable_params": 0}
RETRAIN = {"pick": {"trial": 3, "seeds": 2, "dev_mean": 0.8, "dev_std": 0.01, "selection_mean": 0.82,
                    "runs": [{"seed": 0, "dev": 0.81}, {"seed": 1, "dev": 0.79}]}}


def _trained(tmp_path):
    w = get_lor2c_model(tiny_model("bert"), LoR2CConfig(rank=2, dropout=0.0, inject_count=1))
    torch.manual_seed(3)
    with torch.no_grad():
        for p in w.adapter_parameters():
            p.normal_(0, 0.1)
    w.inject()
    folder = save_adapter(w, tmp_path / "adapter", dict(RUN_META, trainable_params=w.num_adapter_params()))
    return w.eval(), folder


def _logits(model):
    ids = torch.tensor([[5, 9, 14, 3, 7]])
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


def test_lor2c_export_has_own_names_portable_base_and_card(tmp_path):
    w, folder = _trained(tmp_path)
    out = export_folder(folder, tmp_path / "best", RETRAIN, title="LoR2C adapter from study s")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "autolor2c.json", "lor2c_config.json",
                                                     "lor2c_model.safetensors"]
    cfg = json.loads((out / "lor2c_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    card = (out / "README.md").read_text()
    for needle in ("# LoR2C adapter from study s", "`sentence-transformers/all-MiniLM-L6-v2`", "task: sst2",
                   f"{w.num_adapter_params():,} trainable parameters", f"{w.num_head_params():,} parameters",
                   "0.8000 ± 0.0100 over 2 seed(s): seed 0 0.8100, seed 1 0.7900", "LoRA injected on layers",
                   "LoR2CModel.from_pretrained(base,", "structural changes while training: inject"):
        assert needle in card, needle
    assert torch.equal(_logits(LoR2CModel.from_pretrained(tiny_model("bert"), out).eval()), _logits(w))


def test_old_peft_named_folder_exports_under_new_names(tmp_path):
    w, folder = _trained(tmp_path)
    (folder / "lor2c_config.json").rename(folder / "adapter_config.json")
    (folder / "lor2c_model.safetensors").rename(folder / "adapter_model.safetensors")
    assert torch.equal(_logits(LoR2CModel.from_pretrained(tiny_model("bert"), folder).eval()), _logits(w))
    out = export_folder(folder, tmp_path / "new")
    assert (out / "lor2c_config.json").is_file() and not (out / "adapter_config.json").exists()
    assert "accuracy: 0.7500 (seed 0)" in (out / "README.md").read_text()
    assert torch.equal(_logits(LoR2CModel.from_pretrained(tiny_model("bert"), out).eval()), _logits(w))


# --------------------------------------------------------------------------------------------------
# `autolor2c export` on a study: the selection reaches every format
# --------------------------------------------------------------------------------------------------
# trial -> (values, injected layer or None, where its adapter is saved: "own", "retrain" or None)
TRIALS = {0: ((0.90, 9000), None, "own"), 1: ((0.85, 3000), 3, "retrain"), 2: ((0.70, 500), None, "own"),
          3: ((0.60, 8000), None, None)}


def _minilm_adapter(folder, inject: int | None, seed: int):
    from autolor2c.train import load_backbone

    w = get_lor2c_model(load_backbone(None, 2, seed=0), LoR2CConfig(rank=2, dropout=0.0))
    if inject is not None:
        w = get_lor2c_model(load_backbone(None, 2, seed=0), LoR2CConfig(rank=2, dropout=0.0, inject_count=1))
        w.inject()
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in w.adapter_parameters():
            p.normal_(0, 0.05)
    return w, save_adapter(w, folder, dict(RUN_META, trainable_params=w.num_adapter_params()))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A finished study as a search leaves it: a front of three, the pick (trial 0) in adapter/ and
    best_config.yaml, trial 1 (the knee) retrained the old way, trials 0 and 2 with their own adapters."""
    import optuna

    from autolor2c.search.space import TrialPlan
    from autolor2c.train import TrainArgs

    tmp = tmp_path_factory.mktemp("study")
    out = tmp / "out"
    storage = f"sqlite:///{tmp}/s.db"
    s = optuna.create_study(study_name="s", storage=storage, directions=["maximize", "minimize"])
    s.set_metric_names(["accuracy", "trainable_params"])
    s.set_user_attr("artifacts_dir", str(out))
    s.set_user_attr("retrain", {"trial": 0, "seeds": 2})
    args = dataclasses.asdict(TrainArgs(max_train_samples=4000, selection_fraction=0.1))
    for n, (values, inject, where) in TRIALS.items():
        cfg = LoR2CConfig(rank=2, dropout=0.0, inject_count=1 if inject is not None else 0)
        plan = TrialPlan("lor2c", cfg.validate(6), train={}, num_layers=6, space="test").to_dict()
        structure = {"method": "lor2c", "spans": [[k, k] for k in range(6) if k != inject], "ranks": [2] * (5 if inject is not None else 6),
                     "injected": [inject] if inject is not None else [], "share_a": False}
        s.add_trial(optuna.trial.create_trial(values=list(values), user_attrs={
            "plan": plan, "final_structure": structure, "feasible": True, "trained": True}))
        if where is not None:
            run = out / ("trials" if where == "own" else "retrain") / (f"trial{n}" if where == "own" else f"trial{n}-seed0")
            _, folder = _minilm_adapter(run / "adapter", inject, seed=10 + n)
            (run / "metrics.json").write_text(json.dumps({"train_args": args, "n_train": 3600, "steps": 300,
                                                          "epochs": 2.667, "wall_time_s": 40.0, "device": "cpu"}))
    shutil.copytree(out / "trials" / "trial0" / "adapter", out / "adapter")
    (out / "best_config.yaml").write_text(yaml.safe_dump({"method": "lor2c", "source": {"study": "s", "trial": 0}}))
    runs = [{"seed": 0, "selection": 0.91, "dev": 0.88}, {"seed": 1, "selection": 0.89, "dev": 0.86}]
    (out / "retrain.json").write_text(json.dumps({
        "pick": {"trial": 0, "seeds": 2, "dev_mean": 0.87, "dev_std": 0.014, "selection_mean": 0.90, "runs": runs},
        "points": [{"trial": 1, "seeds": 1, "dev_mean": 0.84, "dev_std": 0.0, "selection_mean": 0.85,
                    "runs": [{"seed": 0, "selection": 0.85, "dev": 0.84}]}]}))
    return tmp, storage, out


def _weights(folder):
    return (folder / "lor2c_model.safetensors").read_bytes()


def _export(storage, tmp_path, *flags):
    out = tmp_path / "-".join(f.strip("-") for f in flags)
    return main(["export", "--study", "s", "--storage", storage, "--out", str(out), *flags]), out


def test_the_selection_reaches_every_format(study, tmp_path, capsys):
    _, storage, src = study
    want = {"knee": 1, "smallest": 2, "best": 0}
    for pick, trial in want.items():
        rc, folder = _export(storage, tmp_path, "--format", "lor2c", "--pick", pick)
        assert rc == 0, capsys.readouterr().err
        where = src / ("retrain" if trial == 1 else "trials") / (f"trial{trial}-seed0" if trial == 1 else f"trial{trial}") / "adapter"
        assert _weights(folder) == _weights(where), pick  # the pick's own weights, not the study's pick
        assert f"trial {trial} ({pick})" in capsys.readouterr().out
        rc, yfolder = _export(storage, tmp_path, "--format", "yaml", "--pick", pick)
        assert rc == 0 and yaml.safe_load((yfolder / "config.yaml").read_text())["source"]["trial"] == trial
    # no flag: the study's own pick (the trial in its adapter/ and best_config.yaml)
    rc, folder = _export(storage, tmp_path, "--format", "lor2c")
    assert rc == 0 and _weights(folder) == _weights(src / "adapter")
    capsys.readouterr()


def test_export_trial_of_a_retrained_front_point_and_a_clear_line_without_one(study, tmp_path, capsys):
    _, storage, src = study
    rc, folder = _export(storage, tmp_path, "--format", "lor2c", "--trial", "1")
    assert rc == 0 and _weights(folder) == _weights(src / "retrain" / "trial1-seed0" / "adapter")
    card = (folder / "README.md").read_text()
    assert "trial 1" in card and "this folder's weights (seed 0): accuracy 0.8400 on the dev set" in card
    capsys.readouterr()
    rc, _ = _export(storage, tmp_path, "--format", "lor2c", "--trial", "3")
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1
    assert "trial 3 has no saved adapter" in err[0] and "--trial 3" in err[0] and "top rung" in err[0]


def test_lora_without_a_lora_part_says_so_and_names_the_points_that_have_one(study, tmp_path, capsys):
    _, storage, _ = study
    rc, _ = _export(storage, tmp_path, "--format", "lora")
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert rc == 2 and len(err) == 1 and "bad" not in err[0]
    assert "trial 0 has no LoRA part to export" in err[0] and "front points with a LoRA part: trial(s) 1" in err[0]


def test_lora_folder_names_the_hub_id_and_each_saved_module_once(study, tmp_path, capsys):
    from peft import PeftModel

    from autolor2c.train import load_backbone

    _, storage, _ = study
    rc, folder = _export(storage, tmp_path, "--format", "lora", "--trial", "1")
    assert rc == 0, capsys.readouterr().err
    cfg = json.loads((folder / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert cfg["modules_to_save"] == ["bert.pooler", "classifier"]
    PeftModel.from_pretrained(load_backbone(None, 2), str(folder))  # still loads in stock PEFT


def test_card_has_front_matter_labels_training_and_an_offline_load(study, tmp_path):
    _, storage, _ = study
    rc, folder = _export(storage, tmp_path, "--format", "lor2c")
    assert rc == 0
    card = (folder / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["base_model"] == "sentence-transformers/all-MiniLM-L6-v2" and front["library_name"] == "autolor2c"
    assert "lor2c" in front["tags"] and front["metrics"] == ["accuracy"]
    assert "labels: 0 = negative, 1 = positive" in card
    assert "learning rate 0.002, batch size 32" in card and "3,600 training rows, 300 optimiser steps" in card
    assert "transformers " in card and "torch " in card  # versions
    assert "resolve_model(None)" in card  # the embedded model: loads offline
    # the folder's own weights are seed 0's: its score is seed 0's, the seed mean is labelled as such
    assert "this folder's weights (seed 0): accuracy 0.8800 on the dev set" in card
    assert "0.8700 ± 0.0140 over 2 seed(s): seed 0 0.8800, seed 1 0.8600" in card


def test_yaml_export_writes_the_training_arguments(study, tmp_path):
    from autolor2c.train import read_config_file

    _, storage, _ = study
    rc, folder = _export(storage, tmp_path, "--format", "yaml")
    assert rc == 0
    train = yaml.safe_load((folder / "config.yaml").read_text())["train"]
    assert train["learning_rate"] == 2e-3 and train["max_train_samples"] == 4000 and train["selection_fraction"] == 0.1
    assert "progress" not in train and "device" not in train
    assert read_config_file(str(folder / "config.yaml"))[1] == train  # `autolor2c train --config` reads it
