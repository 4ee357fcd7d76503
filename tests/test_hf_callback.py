"""A user's own transformers.Trainer trains a LoR2C config through LoR2CCallback: default
TrainingArguments (unused columns removed by the forward's signature), a merge and an injection at the
scheduled steps, the injected LoRA trained by the Trainer's optimizer and scheduler, the adapter in every
checkpoint, and LoR2CModel.from_pretrained reproducing the trained model's logits."""

from __future__ import annotations

import inspect

import pytest
import torch
import yaml
from datasets import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments

from autolor2c.integrations.hf import LoR2CCallback, load_config
from autolor2c.lor2c import LoR2CConfig, LoR2CModel, get_lor2c_model
from tests.conftest import tiny_model


def _dataset(n: int = 48) -> Dataset:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 100, (n, 12), generator=g)
    labels = (ids[:, 0] > 50).long()  # learnable from the first token
    return Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": torch.ones_like(ids).tolist(),
                              "label": labels.tolist(), "text": [f"row {i}" for i in range(n)]})  # text: not a model input


def test_trainer_with_processing_class_trains(tmp_path, minilm_path):
    """The standard set-up (``processing_class=tokenizer``) reads ``model.config`` as a transformers config."""
    from transformers import AutoTokenizer

    base = tiny_model("bert")
    model = get_lor2c_model(base, LoR2CConfig(rank=2, dropout=0.0))
    assert model.config is base.config and model.lor2c_config.rank == 2
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=8,
                             report_to=[], use_cpu=True, save_strategy="no")
    trainer = Trainer(model=model, args=args, train_dataset=_dataset(16),
                      processing_class=AutoTokenizer.from_pretrained(str(minilm_path)))
    assert trainer.train().global_step == 2


def test_forward_keeps_the_base_signature():
    w = get_lor2c_model(tiny_model("bert"), LoR2CConfig())
    params = inspect.signature(w.forward).parameters
    assert {"input_ids", "attention_mask", "labels"} <= set(params)


def test_user_trainer_trains_merges_injects_saves_adapter_and_reloads(tmp_path):
    # the config a search exports (export --format yaml) is what the user starts from
    exported = tmp_path / "config.yaml"
    exported.write_text(yaml.safe_dump({"method": "lor2c", "adapter": LoR2CConfig(
        rank=2, alpha=4, dropout=0.0, merge_count=1, inject_count=1).to_dict(), "train": {"learning_rate": 1e-2}}))
    model = get_lor2c_model(tiny_model("bert", layers=4), load_config(exported))
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=8, per_device_train_batch_size=8,
                             learning_rate=1e-2, save_steps=4, logging_steps=4, report_to=[], use_cpu=True,
                             seed=0, warmup_steps=2)
    callback = LoR2CCallback(model)
    seen_lrs: dict[int, list[float]] = {}

    class RecordLRs(TrainerCallback):
        def on_step_end(self, args, state, control, optimizer=None, **kwargs):
            seen_lrs[state.global_step] = [g["lr"] for g in optimizer.param_groups]

    trainer = Trainer(model=model, args=args, train_dataset=_dataset(), callbacks=[callback, RecordLRs()])
    trainer.train()

    assert callback.schedule == {2: ["merge", "inject"]}
    assert [(e["op"], e["step"]) for e in model.history] == [("merge", 2), ("inject", 2)]
    assert len(model.bypasses) == 2 and model.lor2c_config.injected
    # the injected LoRA joined the Trainer's optimizer and trained (B starts at zero)
    opt_params = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    lora = list(model.injections.values())[0]
    assert id(lora.A) in opt_params and id(lora.B) in opt_params and lora.B.abs().sum() > 0
    # ... and follows the Trainer's warm-up/decay schedule with the other groups
    assert len(seen_lrs[1]) == 2 and len(seen_lrs[3]) == 3  # decay, no-decay, then the injected LoRA
    for step in (3, 5, 7):
        assert seen_lrs[step][0] > 0 and len({round(lr, 12) for lr in seen_lrs[step]}) == 1, seen_lrs
    assert seen_lrs[3][0] > seen_lrs[5][0] > seen_lrs[7][0]
    # each checkpoint holds the adapter, not the full model
    for step in (4, 8):
        ckpt = tmp_path / "out" / f"checkpoint-{step}"
        assert (ckpt / "lor2c_config.json").is_file() and (ckpt / "lor2c_model.safetensors").is_file()
        assert not (ckpt / "model.safetensors").exists()
        assert (ckpt / "lor2c_model.safetensors").stat().st_size < 40_000
    # the last checkpoint reloads onto a fresh copy of the base and gives the same logits
    reloaded = LoR2CModel.from_pretrained(tiny_model("bert", layers=4), tmp_path / "out" / "checkpoint-8").eval()
    batch = _dataset(6)
    inputs = {"input_ids": torch.tensor(batch["input_ids"]), "attention_mask": torch.tensor(batch["attention_mask"])}
    model.eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**inputs).logits, model(**inputs).logits, atol=1e-6)


def test_load_config_takes_a_trained_folder_as_it_is(tmp_path):
    w = get_lor2c_model(tiny_model("bert"), LoR2CConfig(rank=2, merge_count=1, inject_count=1))
    w.merge()
    w.inject()
    cfg = load_config(w.save_pretrained(tmp_path / "a"))
    assert cfg.spans == w.spans and cfg.injected == w.lor2c_config.injected
    assert cfg.merge_count == 0 and cfg.inject_count == 0
    with pytest.raises(ValueError, match="not a LoR2C config"):
        (tmp_path / "x.yaml").write_text("method: lora\nadapter: {}\n")
        load_config(tmp_path / "x.yaml")


def test_training_arguments_carry_the_library_defaults(tmp_path):
    from autolor2c.integrations.hf import training_arguments
    from autolor2c.train import TrainArgs

    d = TrainArgs()
    args = training_arguments(tmp_path)
    assert (args.learning_rate, args.per_device_train_batch_size, args.warmup_steps, args.weight_decay,
            args.max_grad_norm, args.num_train_epochs, args.seed) == (
        d.learning_rate, d.batch_size, d.warmup_ratio, d.weight_decay, d.grad_clip, d.epochs, d.seed)
    assert args.max_steps == -1  # epochs decide, as transformers does without train_rows
    # a small training set still gets min_steps steps; a config's train: section and overrides apply
    small = training_arguments(tmp_path, train={"learning_rate": 1e-3}, train_rows=64, report_to="none")
    assert small.max_steps == d.min_steps and small.learning_rate == 1e-3
    assert training_arguments(tmp_path, train_rows=64, max_steps=5).max_steps == 5
    # early stopping is the Trainer's: evaluations and saves at the same steps, the best checkpoint kept
    stop = training_arguments(tmp_path, train={"patience": 2, "eval_every": 50}, train_rows=64, report_to="none")
    assert (stop.eval_strategy, stop.eval_steps, stop.save_steps, stop.load_best_model_at_end) == ("steps", 50, 50, True)
    assert not training_arguments(tmp_path, train_rows=64, report_to="none").load_best_model_at_end
