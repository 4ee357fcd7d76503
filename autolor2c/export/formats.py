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
from autolor2c.lor2c import CONFIG_NAME, WEIGHTS_NAME, LoR2CModel, adapter_files, read_adapter_config, write_folder_atomically

# "peft" is the old name of "lor2c" (the folder never was a PEFT adapter); kept so old scripts run
FORMATS = ("lor2c", "yaml", "json", "lora", "peft")


def export_folder(adapter_dir: Path, out: Path, retrain: dict[str, Any] | None = None, title: str | None = None) -> Path:
    """LoR2C's own folder (lor2c_config.json + lor2c_model.safetensors + autolor2c.json), copied atomically
    with a portable ``base_model_name_or_path`` and a model card (README.md) that gives ``retrain``'s
    scores per seed. A folder saved under the old PEFT-like names comes out under the new ones."""
    from autolor2c.train.adapters import META_NAME
    from autolor2c.train.backbone import portable_model_name
    from autolor2c.train.card import model_card

    cfg_path, weights_path = adapter_files(adapter_dir)
    if not cfg_path.is_file() or not weights_path.is_file() or not (adapter_dir / META_NAME).is_file():
        raise UserError(f"no adapter in {adapter_dir}: retrain the study's pick first")
    run_meta = json.loads((adapter_dir / META_NAME).read_text())
    meta = read_adapter_config(adapter_dir)
    meta["base_model_name_or_path"] = portable_model_name(run_meta.get("model"))

    def write(tmp: Path) -> None:
        shutil.copyfile(weights_path, tmp / WEIGHTS_NAME)
        shutil.copyfile(adapter_dir / META_NAME, tmp / META_NAME)
        (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2, default=str))
        (tmp / "README.md").write_text(model_card(run_meta, meta, retrain, title))

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
    a PEFT LoRA model. Returns the folder and a plain statement of what the folder cannot express."""
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model

    if isinstance(wrapped, PeftModel):  # already plain LoRA: save as is
        return (write_folder_atomically(out, lambda tmp: wrapped.save_pretrained(str(tmp))),
                "nothing left out: the whole adapter is LoRA")
    if not isinstance(wrapped, LoR2CModel):
        raise UserError(f"only a LoR2C or LoRA model exports as LoRA, not a {type(wrapped).__name__}")
    injected = list(wrapped.lor2c_config.injected)
    if not injected:
        raise UserError("nothing to export as LoRA: this configuration has no injected layers (its bypasses cross "
                        "layers, which LoRA cannot express); export LoR2C's own folder instead", param="format",
                        value="lora")
    names = sorted({key.split(":", 1)[1].replace("/", ".").split(".")[-1] for key in wrapped.injections.keys()})
    cfg = LoraConfig(task_type=TaskType.SEQ_CLS, r=wrapped.lor2c_config.lora_rank, lora_alpha=wrapped.lor2c_config.inject_alpha,
                     lora_dropout=wrapped.lor2c_config.dropout, target_modules=names, layers_to_transform=injected,
                     modules_to_save=list(wrapped.head_modules) or None)
    if base_name:
        cfg.base_model_name_or_path = base_name
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
        (tmp / "README.md").write_text(f"# LoRA export\n\nThis folder {caveat}.\n")

    return write_folder_atomically(out, write), caveat


__all__ = ["FORMATS", "export_config", "export_folder", "export_lora"]
