"""What a training run adapts a backbone with: a LoR2C config, or a plain LoRA baseline through stock PEFT.

One small spec type, a reader for config files (YAML/JSON or a built-in name), attaching to a model,
the exact analytic parameter count of either, and saving/loading an adapter folder.
"""

from __future__ import annotations

import importlib.resources
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from autolor2c.errors import UserError
from autolor2c.lor2c import (
    CONFIG_NAME,
    AdapterLoadError,
    ConfigError,
    LayerStackError,
    LoR2CConfig,
    LoR2CModel,
    ModelShape,
    count_params,
    planned_params,
    read_adapter_config,
)
from autolor2c.lor2c.model import write_folder_atomically
from autolor2c.lor2c.model import HEAD_NAMES, LEGACY_CONFIG_NAME, adapter_files, find_head, find_layer_stack, find_projection

from .backbone import portable_model_name

METHODS = ("lor2c", "lora", "adalora", "head")  # adalora and head are baselines; head: no adapter at all
META_NAME = "autolor2c.json"  # task, labels and training facts beside either kind of adapter


@dataclass
class LoRASpec:
    """A plain LoRA baseline (stock PEFT): rank/alpha/dropout on ``target_modules`` of ``layers``."""

    rank: int = 4
    alpha: float = 8.0
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: ["query", "value"])
    layers: list[int] | None = None  # None: every layer

    def validate(self, num_layers: int | None = None) -> "LoRASpec":
        if not isinstance(self.rank, int) or self.rank < 1:
            raise ConfigError(f"lora.rank={self.rank!r}: must be an integer >= 1")
        if not (isinstance(self.alpha, (int, float)) and self.alpha > 0):
            raise ConfigError(f"lora.alpha={self.alpha!r}: must be > 0")
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ConfigError(f"lora.dropout={self.dropout!r}: must be in [0, 1)")
        if not self.target_modules:
            raise ConfigError("lora.target_modules: must be a non-empty list")
        if self.layers is not None:
            if not self.layers or any(not isinstance(k, int) or k < 0 or (num_layers and k >= num_layers) for k in self.layers):
                raise ConfigError(f"lora.layers={self.layers!r}: must be layer indices in range")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "alpha": self.alpha, "dropout": self.dropout,
                "target_modules": list(self.target_modules), "layers": self.layers}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LoRASpec":
        unknown = set(d) - {"rank", "alpha", "dropout", "target_modules", "layers"}
        if unknown:
            raise ConfigError(f"unknown LoRA config key(s): {', '.join(sorted(unknown))}")
        spec = cls(**d)
        spec.alpha = float(spec.alpha)
        return spec.validate()


@dataclass
class AdaLoRASpec:
    """PEFT's AdaLoRA baseline: every targeted module starts at ``init_r`` (what it trains) and the budget
    is pruned to ``target_r`` per module on average by the end (what it keeps); the schedule is set in
    fractions of the run's steps, so the same spec suits a run of any length."""

    init_r: int = 12
    target_r: int = 8
    alpha: float = 16.0
    dropout: float = 0.1
    target_modules: list[str] = field(default_factory=lambda: ["query", "value"])
    tinit: float = 0.1    # warm-up share before ranks are pruned
    tfinal: float = 0.3   # final share with the ranks fixed
    total_step: int | None = None  # set by the training loop

    @classmethod
    def for_budget(cls, budget: int, shape: ModelShape, **kw) -> "AdaLoRASpec":
        """The largest init_r (at most 12) whose trained count fits ``budget``; target_r = 2/3 of it."""
        spec = cls(**kw)
        per_rank = _adalora_per_rank(spec, shape)
        init_r = max(1, min(12, budget // per_rank))
        spec.init_r, spec.target_r = init_r, max(1, round(init_r * 2 / 3))
        return spec

    def to_dict(self) -> dict[str, Any]:
        return {"init_r": self.init_r, "target_r": self.target_r, "alpha": self.alpha, "dropout": self.dropout,
                "target_modules": list(self.target_modules), "tinit": self.tinit, "tfinal": self.tfinal}


def adalora_schedule(spec: AdaLoRASpec, total_step: int) -> dict[str, int]:
    """PEFT's AdaLoRA schedule in steps of a run of ``total_step``: ranks pruned from ``tinit`` on, every
    ``deltaT`` steps, until ``final_step`` (= total_step - tfinal), after which the budget is final. All
    scale with the run, so a longer default run keeps the same shape."""
    tinit, tfinal = int(spec.tinit * total_step), int(spec.tfinal * total_step)
    return {"total_step": total_step, "tinit": tinit, "tfinal": tfinal,
            "deltaT": max(1, (total_step - tinit - tfinal) // 10), "final_step": total_step - tfinal}


def _adalora_per_rank(spec: AdaLoRASpec, shape: ModelShape) -> int:
    # one rank of one module: a row of A (d_in), a column of B (d_out) and one singular value E
    return shape.num_layers * sum(sum(shape.proj_shapes[t]) + 1 for t in spec.target_modules)


@dataclass
class AdapterSpec:
    method: str
    lor2c: LoR2CConfig | None = None
    lora: LoRASpec | None = None
    adalora: AdaLoRASpec | None = None

    @property
    def config(self):
        return {"lor2c": self.lor2c, "lora": self.lora, "adalora": self.adalora}.get(self.method)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "adapter": self.config.to_dict() if self.config is not None else {}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AdapterSpec":
        method = d.get("method", "lor2c")
        body = d.get("adapter", {k: v for k, v in d.items() if k not in ("method", "train")})
        if method == "lor2c":
            return cls("lor2c", lor2c=LoR2CConfig.from_dict(dict(body)))
        if method == "lora":
            return cls("lora", lora=LoRASpec.from_dict(dict(body)))
        if method == "head":
            return cls("head")
        if method == "adalora":
            return cls("adalora", adalora=AdaLoRASpec(**dict(body)))
        raise ConfigError(f"method={method!r}: must be one of {', '.join(METHODS)}")


def builtin_configs() -> list[str]:
    folder = importlib.resources.files("autolor2c") / "configs"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_config_file(name_or_path: str) -> tuple[AdapterSpec, dict[str, Any]]:
    """Read a config (a built-in name, or a YAML/JSON file): the adapter spec and any training overrides.

    The file is either ``{method, adapter: {...}, train: {...}}`` or a bare LoR2CConfig mapping.
    """
    p = Path(name_or_path)
    if not p.exists() and name_or_path in builtin_configs():
        text = (importlib.resources.files("autolor2c") / "configs" / f"{name_or_path}.yaml").read_text()
        where = f"built-in config {name_or_path!r}"
    elif p.is_file():
        text, where = p.read_text(), str(p)
    else:
        raise UserError(f"no such file and not a built-in config ({', '.join(builtin_configs())})", param="config",
                        value=name_or_path)
    try:
        data = yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{where}: not valid YAML/JSON{at}") from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping, got {type(data).__name__}")
    train = data.get("train") or {}
    if not isinstance(train, dict):
        raise UserError(f"{where}: 'train' must be a mapping")
    try:
        spec = AdapterSpec.from_dict(data)
    except (ConfigError, TypeError) as e:
        raise UserError(f"{where}: {e}") from None
    return spec, train


# --------------------------------------------------------------------------------------------------
def model_shape(model: nn.Module, spec: AdapterSpec | None = None) -> ModelShape:
    cfg = spec.lor2c if spec is not None and spec.method == "lor2c" else None
    if spec is not None and spec.method in ("lora", "adalora"):
        cfg = LoR2CConfig(inject_targets=list(spec.config.target_modules))
    return ModelShape.from_model(model, cfg)


def count_adapter_params(spec: AdapterSpec, shape: ModelShape) -> dict[str, int]:
    """Exact trainable adapter parameters: ``initial``, ``final`` (after the planned merges/injections)
    and ``peak`` (the most at any time in training). The head is ``shape.head_params``."""
    if spec.method == "head":
        return {"initial": 0, "final": 0, "peak": 0}
    if spec.method == "adalora":  # trains every initial rank; keeps target_r per module on average
        per_rank = _adalora_per_rank(spec.adalora, shape)
        n_modules = shape.num_layers * len(spec.adalora.target_modules)
        per_module_rank = per_rank // n_modules
        return {"initial": spec.adalora.init_r * per_rank, "peak": spec.adalora.init_r * per_rank,
                "final": spec.adalora.target_r * n_modules * per_module_rank}
    try:
        if spec.method == "lor2c":
            return planned_params(spec.lor2c, shape)
        lora = spec.lora.validate(shape.num_layers)
        as_lor2c = LoR2CConfig(spans=[], inject_targets=list(lora.target_modules), inject_rank=lora.rank,
                               injected=list(lora.layers if lora.layers is not None else range(shape.num_layers)))
        n = count_params(as_lor2c, shape)
    except (ConfigError, LayerStackError) as e:
        raise UserError(str(e)) from None
    return {"initial": n, "final": n, "peak": n}


def attach(model: nn.Module, spec: AdapterSpec) -> nn.Module:
    """Freeze the backbone and attach the adapter (the head stays trainable)."""
    if spec.method == "lor2c":
        return LoR2CModel(model, spec.lor2c)
    if spec.method == "head":
        model.requires_grad_(False)
        for name in find_head(model):
            model.get_submodule(name).requires_grad_(True)
        return model
    if spec.method == "adalora":
        from peft import AdaLoraConfig, TaskType, get_peft_model

        ada = spec.adalora
        if not ada.total_step:
            raise ValueError("an AdaLoRA spec needs total_step (the training loop sets it)")
        _, layers = find_layer_stack(model)
        names = sorted({find_projection(layers[0], t)[0].split(".")[-1] for t in ada.target_modules})
        extra_head = [n for n in find_head(model) if n not in HEAD_NAMES]
        sched = adalora_schedule(ada, ada.total_step)
        cfg = AdaLoraConfig(task_type=TaskType.SEQ_CLS, init_r=ada.init_r, target_r=ada.target_r,
                            lora_alpha=ada.alpha, lora_dropout=ada.dropout, target_modules=names,
                            total_step=ada.total_step, tinit=sched["tinit"], tfinal=sched["tfinal"],
                            deltaT=sched["deltaT"], modules_to_save=extra_head or None)
        return get_peft_model(model, cfg)
    from peft import LoraConfig, TaskType, get_peft_model

    lora = spec.lora
    _, layers = find_layer_stack(model)
    names = sorted({find_projection(layers[0], t)[0].split(".")[-1] for t in lora.target_modules})
    extra_head = [n for n in find_head(model) if n not in HEAD_NAMES]  # the pooler: same head as LoR2C's
    cfg = LoraConfig(task_type=TaskType.SEQ_CLS, r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                     target_modules=names, layers_to_transform=lora.layers, modules_to_save=extra_head or None)
    return get_peft_model(model, cfg)


def adapter_param_count(model: nn.Module) -> tuple[int, int]:
    """(adapter, head) trainable parameters actually present in an attached model."""
    if isinstance(model, LoR2CModel):
        return model.num_adapter_params(), model.num_head_params()
    adapter = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and "lora_" in n)
    head = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and "lora_" not in n)
    return adapter, head


def adapter_structure(model: nn.Module, spec: AdapterSpec) -> dict[str, Any]:
    """The final structure as plain data (for metrics.json and trial attributes)."""
    if isinstance(model, LoR2CModel):
        return {"method": "lor2c", "spans": model.spans, "ranks": [b.rank for b in model.bypasses],
                "injected": list(model.lor2c_config.injected), "share_a": model.lor2c_config.share_a}
    if spec.method == "head":
        return {"method": "head"}
    if spec.method == "adalora":  # what it ends with: the ranks whose singular value survived the pruning
        kept_ranks, kept_params = 0, 0
        for m in model.modules():
            if hasattr(m, "lora_E") and "default" in m.lora_E:
                alive = int((m.lora_E["default"].detach() != 0).sum())
                kept_ranks += alive
                kept_params += alive * (m.lora_A["default"].shape[1] + m.lora_B["default"].shape[0] + 1)
        return {"method": "adalora", "init_r": spec.adalora.init_r, "target_r": spec.adalora.target_r,
                "kept_ranks": kept_ranks, "kept_params": kept_params}
    return {"method": "lora", "rank": spec.lora.rank, "layers": spec.lora.layers,
            "target_modules": list(spec.lora.target_modules)}


def lora_part(structure: dict[str, Any] | None) -> str | None:
    """What a LoRA export of a configuration with this final structure holds, or None: no LoRA part."""
    st = structure or {}
    if st.get("method") == "lora":
        return f"all of it (LoRA rank {st.get('rank')})"
    if st.get("injected"):
        return f"the LoRA injected on layers {st['injected']}"
    return None


def save_adapter(model: nn.Module, folder: str | Path, meta: dict[str, Any]) -> Path:
    """Save either kind of adapter plus ``autolor2c.json`` (task, labels, base model) and a model card."""
    from .card import model_card

    text = json.dumps(meta, indent=2, default=str)
    base_name = portable_model_name(meta.get("model"))
    if isinstance(model, LoR2CModel):
        folder = model.save_pretrained(folder, extra={"autolor2c": meta, "base_model_name_or_path": base_name},
                                       extra_files={META_NAME: text})
        (folder / "README.md").write_text(model_card(meta, read_adapter_config(folder)))
        return folder

    def write(tmp: Path) -> None:
        model.peft_config["default"].base_model_name_or_path = base_name
        model.save_pretrained(str(tmp))
        (tmp / META_NAME).write_text(text)
        (tmp / "README.md").write_text(model_card(meta, None))  # after PEFT's own card, which it replaces

    return write_folder_atomically(folder, write)


def read_meta(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError("no such folder", param="adapter", value=str(folder))
    f = folder / META_NAME
    if not f.is_file() or not any((folder / n).is_file() for n in (CONFIG_NAME, LEGACY_CONFIG_NAME)):
        raise UserError(f"not an autolor2c adapter folder (needs {META_NAME} and {CONFIG_NAME})", param="adapter",
                        value=str(folder))
    try:
        meta = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{f}: invalid JSON ({e})") from None
    if not isinstance(meta, dict) or "task" not in meta:
        raise UserError(f"{f}: missing the task description")
    return meta


def load_adapter(base: nn.Module, folder: str | Path) -> nn.Module:
    """Attach a saved adapter (either kind) to a fresh base model; weights read with safetensors only."""
    folder = Path(folder)
    cfg_path = adapter_files(folder)[0]  # a PEFT LoRA baseline, or a LoR2C folder saved before 0.2
    try:
        cfg = json.loads(cfg_path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{cfg_path}: unreadable ({e})") from None
    if cfg.get("peft_type") == "LORA":
        from peft import PeftModel

        if not (folder / "adapter_model.safetensors").is_file():
            raise UserError(f"{folder}: LoRA adapter without adapter_model.safetensors")
        return PeftModel.from_pretrained(base, str(folder))
    try:
        return LoR2CModel.from_pretrained(base, folder)
    except (AdapterLoadError, LayerStackError) as e:
        raise UserError(str(e)) from None
