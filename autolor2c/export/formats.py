"""Export a searched configuration for other tools: LoR2C's own adapter folder with a model card, the
config as YAML/JSON, or a stock PEFT ``LoraConfig`` folder for the part of the adapter that is plain LoRA."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from autolor2c.errors import UserError
from autolor2c.lor2c import CONFIG_NAME, WEIGHTS_NAME, LoR2CModel, adapter_files, read_adapter_config
from autolor2c.lor2c.model import write_folder_atomically
from autolor2c.train.adapters import lora_part  # noqa: F401  (export's public name for it)

# "peft" is the old name of "lor2c" (the folder never was a PEFT adapter); kept so old scripts run
FORMATS = ("lor2c", "yaml", "json", "lora", "peft")


def find_trial_adapter(src: Path, trial: int, recorded: str | Path | None = None,
                       pick_trial: int | None = None) -> Path:
    """Trial ``trial``'s adapter folder in a study's artifacts folder ``src``: its own model
    (``trials/trial<N>/adapter``), else its retrained seed 0 (``retrain/trial<N>-seed0/adapter``), else the
    folder the trial recorded, else ``adapter/`` when ``pick_trial`` says it holds this trial."""
    from autolor2c.train.adapters import META_NAME

    own = src / "trials" / f"trial{trial}" / "adapter"
    seed0 = src / "retrain" / f"trial{trial}-seed0" / "adapter"
    candidates = [own, seed0] + ([Path(recorded)] if recorded else []) + ([src / "adapter"] if pick_trial == trial else [])
    for folder in candidates:
        cfg, weights = adapter_files(folder)
        if cfg.is_file() and weights.is_file() and (folder / META_NAME).is_file():
            return folder
    raise UserError(f"trial {trial} has no saved adapter (neither {own} nor {seed0} exists): only a trial that "
                    "finished at the top rung keeps one", param="trial", value=trial)


def trial_runs(retrain: dict[str, Any] | None, trial: int) -> dict[str, Any] | None:
    """Trial ``trial``'s summary over seeds (with its ``runs``) in a search's retrain.json, if it has one."""
    if not isinstance(retrain, dict):
        return None
    entries = [retrain.get(k) for k in ("pick", "best")] + list(retrain.get("points") or [])
    return next((e for e in entries if isinstance(e, dict) and e.get("trial") == trial and e.get("runs")), None)


def run_record(adapter_dir: Path) -> dict[str, Any] | None:
    """The metrics.json of the run that saved ``adapter_dir`` (its training arguments, rows, steps), if any."""
    f = Path(adapter_dir).parent / "metrics.json"
    try:
        return json.loads(f.read_text()) if f.is_file() else None
    except (OSError, json.JSONDecodeError):
        return None


def trained_settings(train_args: dict[str, Any] | None) -> dict[str, Any]:
    """A run's training arguments as a config's ``train:`` section (what ``autolor2c train --config`` reads)."""
    from dataclasses import fields

    from autolor2c.train import TrainArgs

    known = {f.name for f in fields(TrainArgs)} - {"progress", "device"}
    return {k: v for k, v in (train_args or {}).items() if k in known}


def export_folder(adapter_dir: Path, out: Path, retrain: dict[str, Any] | None = None, title: str | None = None,
                  training: dict[str, Any] | None = None) -> Path:
    """LoR2C's own folder (lor2c_config.json + lor2c_model.safetensors + autolor2c.json), copied atomically
    with a portable ``base_model_name_or_path`` and a model card (README.md) that gives ``retrain``'s
    scores per seed and ``training``'s details (default: the metrics.json beside ``adapter_dir``). A folder
    saved under the old PEFT-like names comes out under the new ones."""
    from autolor2c.train.adapters import META_NAME
    from autolor2c.train.backbone import portable_model_name
    from autolor2c.train.card import model_card

    cfg_path, weights_path = adapter_files(adapter_dir)
    if not cfg_path.is_file() or not weights_path.is_file() or not (adapter_dir / META_NAME).is_file():
        raise UserError(f"no adapter in {adapter_dir}: retrain the study's pick first")
    run_meta = json.loads((adapter_dir / META_NAME).read_text())
    meta = read_adapter_config(adapter_dir)
    if meta.get("method") != "lor2c":
        raise UserError(f"{adapter_dir} is a PEFT LoRA adapter, not LoR2C: export it with format lora")
    meta["base_model_name_or_path"] = portable_model_name(run_meta.get("model"))
    training = training if training is not None else run_record(adapter_dir)

    def write(tmp: Path) -> None:
        shutil.copyfile(weights_path, tmp / WEIGHTS_NAME)
        shutil.copyfile(adapter_dir / META_NAME, tmp / META_NAME)
        (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2, default=str))
        (tmp / "README.md").write_text(model_card(run_meta, meta, retrain, title, training))

    return write_folder_atomically(out, write)


def export_config(config: dict[str, Any], out: Path, fmt: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / ("config.yaml" if fmt == "yaml" else "config.json")
    text = yaml.safe_dump(config, sort_keys=False) if fmt == "yaml" else json.dumps(config, indent=2)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def export_lora(wrapped: nn.Module, base_for_peft: nn.Module, out: Path, base_name: str | None) -> tuple[Path, str]:
    """Write a stock PEFT LoRA folder holding the injected LoRA (and the head) of a LoR2C model, or all of
    a PEFT LoRA model. Returns the folder and a plain statement of what the folder cannot express.
    ``base_name`` is what the folder names as its base model (give the portable name, not a local path)."""
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model

    if isinstance(wrapped, PeftModel):  # already plain LoRA: save as is
        def write_peft(tmp: Path) -> None:
            wrapped.save_pretrained(str(tmp))
            _tidy_peft_config(tmp, base_name, wrapped.base_model.model)

        return write_folder_atomically(out, write_peft), "nothing left out: the whole adapter is LoRA"
    if not isinstance(wrapped, LoR2CModel):
        raise UserError(f"only a LoR2C or LoRA model exports as LoRA, not a {type(wrapped).__name__}")
    injected = list(wrapped.lor2c_config.injected)
    if not injected:
        raise UserError("this configuration has no LoRA part to export (no injected layers: its bypasses cross "
                        "layers, which LoRA cannot express); export LoR2C's own folder (format lor2c) instead")
    names = sorted({key.split(":", 1)[1].replace("/", ".").split(".")[-1] for key in wrapped.injections.keys()})
    cfg = LoraConfig(task_type=TaskType.SEQ_CLS, r=wrapped.lor2c_config.lora_rank, lora_alpha=wrapped.lor2c_config.inject_alpha,
                     lora_dropout=wrapped.lor2c_config.dropout, target_modules=names, layers_to_transform=injected,
                     modules_to_save=list(wrapped.head_modules) or None)
    peft_model = get_peft_model(base_for_peft, cfg)
    # copy the injected LoRA and head weights into PEFT's modules
    import torch

    layers_path = wrapped.layers_path
    with torch.no_grad():
        named = dict(peft_model.named_parameters())
        for key, lora in wrapped.injections.items():
            layer, mod = key.split(":", 1)
            layer_idx = int(layer.removeprefix("layer"))
            prefix = f"base_model.model.{layers_path}.{layer_idx}.{mod.replace('/', '.')}"
            named[f"{prefix}.lora_A.default.weight"].copy_(lora.A)
            named[f"{prefix}.lora_B.default.weight"].copy_(lora.B)
        for name in wrapped.head_modules:
            for pn, p in wrapped.base_model.get_submodule(name).named_parameters():
                named[f"base_model.model.{name}.modules_to_save.default.{pn}"].copy_(p)
    spans = wrapped.spans
    caveat = (f"holds the injected LoRA of layers {injected} (rank {wrapped.lor2c_config.lora_rank} on {', '.join(names)}) "
              f"and the head; it cannot express the {len(spans)} residual bypass(es) {spans}, which cross layers: "
              f"alone it does NOT reproduce the LoR2C model's outputs (use --format lor2c for that)"
              if spans else "nothing left out: every bypass was injected as LoRA")

    def write(tmp: Path) -> None:
        peft_model.save_pretrained(str(tmp))
        _tidy_peft_config(tmp, base_name, base_for_peft, list(wrapped.head_modules))
        (tmp / "README.md").write_text(f"# LoRA export\n\nThis folder {caveat}.\n")

    return write_folder_atomically(out, write), caveat


def _tidy_peft_config(folder: Path, base_name: str | None, base: nn.Module, head: list[str] | None = None) -> None:
    """PEFT writes the base model's local path and, for SEQ_CLS, adds ``classifier`` and ``score`` to
    ``modules_to_save`` whatever the model has: name the portable base model, and list each saved module
    once, only if the model has it."""
    path = folder / "adapter_config.json"
    cfg = json.loads(path.read_text())
    if base_name:
        cfg["base_model_name_or_path"] = base_name
    modules = head if head is not None else (cfg.get("modules_to_save") or [])
    present = {n for n, _ in base.named_modules()}
    kept = [m for m in dict.fromkeys(modules)
            if m in present or any(n == m or n.endswith(f".{m}") for n in present)]
    cfg["modules_to_save"] = kept or None
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True))


__all__ = ["FORMATS", "export_config", "export_folder", "export_lora", "find_trial_adapter", "lora_part", "run_record",
           "trained_settings", "trial_runs"]
