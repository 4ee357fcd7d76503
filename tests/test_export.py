"""`export --format lor2c`: LoR2C's own folder with a portable base model name and a model card; old
(PEFT-named) folders export and load too."""

from __future__ import annotations

import json

import torch

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
