"""LoR2CModel: attaches LoR2C bypasses to any Hugging Face transformer, and the structural operations
(merge, inject) and spectrum scores that MergeLoR2C / InjectLoR2C use during training.

The wrapper knows nothing of training: a loop calls ``merge()`` / ``inject()`` when it wants to and
rebuilds its optimiser from ``trainable_parameters()``.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from autolor2c.errors import UserError

from .config import ConfigError, LoR2CConfig
from .layer import Bypass, InjectedLoRA, low_rank_singular_values, sfs_score
from .structure import can_merge, guaranteed_events

# LoR2C's own file names: PEFT and transformers take a folder holding adapter_config.json for a PEFT
# adapter, which this is not. Folders saved before 0.2 used those names; they still load.
CONFIG_NAME = "lor2c_config.json"
WEIGHTS_NAME = "lor2c_model.safetensors"
LEGACY_CONFIG_NAME = "adapter_config.json"
LEGACY_WEIGHTS_NAME = "adapter_model.safetensors"
FORMAT_VERSION = 1

# Known homes of the layer stack, tried before the generic search.
LAYER_PATHS = (
    "bert.encoder.layer", "roberta.encoder.layer", "electra.encoder.layer", "xlm_roberta.encoder.layer",
    "deberta.encoder.layer", "distilbert.transformer.layer", "transformer.h", "gpt_neox.layers",
    "model.layers", "model.decoder.layers", "encoder.layer", "transformer.layer", "layers", "h",
)
# Logical projection names -> module names used by the common architectures.
TARGET_ALIASES = {
    "query": ("query", "q_lin", "q_proj", "query_proj", "c_attn", "query_key_value", "Wqkv"),
    "key": ("key", "k_lin", "k_proj", "key_proj", "c_attn", "query_key_value", "Wqkv"),
    "value": ("value", "v_lin", "v_proj", "value_proj", "c_attn", "query_key_value", "Wqkv"),
}
HEAD_NAMES = ("pre_classifier", "classifier", "score")


class LayerStackError(UserError):
    """The transformer layer stack (or a projection) could not be found in a model."""


class AdapterLoadError(UserError):
    """A saved adapter folder is missing, corrupt, or belongs to something else."""


# --------------------------------------------------------------------------------------------------
# Finding things in a model
# --------------------------------------------------------------------------------------------------
def _get_path(root: nn.Module, dotted: str) -> Any:
    obj: Any = root
    for part in dotted.split("."):
        if not hasattr(obj, part):
            return None
        obj = getattr(obj, part)
    return obj


def _num_layers_hint(model: nn.Module) -> int | None:
    cfg = getattr(model, "config", None)
    for name in ("num_hidden_layers", "n_layer", "num_layers", "n_layers"):
        v = getattr(cfg, name, None)
        if isinstance(v, int):
            return v
    return None


def find_layer_stack(model: nn.Module, layers_path: str | None = None) -> tuple[str, nn.ModuleList]:
    """Return (dotted path, ModuleList) of the transformer's layers."""
    if layers_path:
        obj = _get_path(model, layers_path)
        if not isinstance(obj, nn.ModuleList) or len(obj) == 0:
            raise LayerStackError(
                f"layers_path={layers_path!r} does not name a non-empty nn.ModuleList in {type(model).__name__}")
        return layers_path, obj
    hint = _num_layers_hint(model)
    for path in LAYER_PATHS:
        obj = _get_path(model, path)
        if isinstance(obj, nn.ModuleList) and len(obj) > 0 and (hint is None or len(obj) == hint):
            return path, obj
    # Generic: the largest ModuleList of identical blocks whose length matches the config.
    best = None
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) > 0 and len({type(m) for m in mod}) == 1:
            if hint is not None and len(mod) != hint:
                continue
            size = sum(p.numel() for p in mod.parameters())
            if best is None or size > best[0]:
                best = (size, name, mod)
    if best is None:
        raise LayerStackError(
            f"cannot find the layer stack of {type(model).__name__}; pass layers_path='dotted.path' "
            f"(e.g. 'bert.encoder.layer' or 'model.layers') in the LoR2C config")
    return best[1], best[2]


def find_projection(layer: nn.Module, target: str) -> tuple[str, nn.Module]:
    """Find the projection called ``target`` (a logical name like 'query' or a module name) in a layer."""
    names = TARGET_ALIASES.get(target, (target,))
    modules = dict(layer.named_modules())
    for alias in names:
        for name, mod in modules.items():
            if name == alias or name.endswith("." + alias):
                if _in_out(mod) is not None:
                    return name, mod
    raise LayerStackError(
        f"no projection {target!r} in {type(layer).__name__} (looked for {', '.join(names)}); "
        f"set inject_targets to module names of that layer")


def injection_points(layer: nn.Module, layer_idx: int, targets: Iterable[str]):
    """``(key, module, fan_in, fan_out)`` of each distinct projection ``targets`` name in a layer (two
    names of one fused projection give it once); the key is how injections are named and saved."""
    seen = set()
    for t in targets:
        name, mod = find_projection(layer, t)
        if name in seen:
            continue
        seen.add(name)
        fan_in, fan_out = _in_out(mod)
        yield f"layer{layer_idx}:{name}".replace(".", "/"), mod, fan_in, fan_out


def _in_out(mod: nn.Module) -> tuple[int, int] | None:
    if isinstance(mod, nn.Linear):
        return mod.in_features, mod.out_features
    w = getattr(mod, "weight", None)
    if type(mod).__name__ == "Conv1D" and w is not None:  # GPT-2 style: weight is (in, out)
        return int(w.shape[0]), int(w.shape[1])
    return None


def find_head(model: nn.Module, names: Iterable[str] | None = None) -> list[str]:
    """Dotted names of the task-head modules (trained along with the adapter).

    Default: the backbone's pooler, where it has one (BERT's ``bert.pooler``), then the top-level
    classifier modules. With the pooler, BERT trains the same dense + projection head that RoBERTa,
    ELECTRA and DistilBERT carry inside their classifiers; frozen, it stays fitted to next-sentence
    prediction, not to the task.
    """
    if names is not None:
        missing = [n for n in names if not isinstance(_get_path(model, n), nn.Module)]
        if missing:
            raise LayerStackError(f"head module(s) {missing} not found in {type(model).__name__}")
        return list(names)
    children = dict(model.named_children())
    poolers = [f"{name}.pooler" for name, child in children.items()
               if isinstance(getattr(child, "pooler", None), nn.Module) and any(True for _ in child.pooler.parameters())]
    return poolers + [n for n in HEAD_NAMES if n in children]


def _hidden_size(model: nn.Module) -> int:
    cfg = getattr(model, "config", None)
    for name in ("hidden_size", "n_embd", "d_model", "dim"):
        v = getattr(cfg, name, None)
        if isinstance(v, int):
            return v
    raise LayerStackError(f"cannot tell the hidden size of {type(model).__name__} from its config")


# --------------------------------------------------------------------------------------------------
# Shapes and the analytic parameter count
# --------------------------------------------------------------------------------------------------
@dataclass
class ModelShape:
    """What the parameter count needs to know about a model, and nothing more."""

    hidden_size: int
    num_layers: int
    proj_shapes: dict[str, list[int]] = field(default_factory=dict)   # target -> [in, out]
    proj_modules: dict[str, str] = field(default_factory=dict)        # target -> module name in a layer
    backbone_params: int = 0
    head_params: int = 0

    @classmethod
    def from_model(cls, model: nn.Module, config: LoR2CConfig | None = None) -> "ModelShape":
        layers_path = config.layers_path if config else None
        _, layers = find_layer_stack(model, layers_path)
        targets = list(dict.fromkeys(["query", "key", "value"] + (list(config.inject_targets) if config else [])))
        shapes, modules = {}, {}
        for t in targets:
            try:
                name, mod = find_projection(layers[0], t)
            except LayerStackError:
                continue
            shapes[t] = list(_in_out(mod))
            modules[t] = name
        head = find_head(model, config.head_modules if config else None)
        head_ids = {id(p) for n in head for p in _get_path(model, n).parameters()}
        head_params = sum(p.numel() for p in model.parameters() if id(p) in head_ids)
        backbone = sum(p.numel() for p in model.parameters() if id(p) not in head_ids)
        return cls(_hidden_size(model), len(layers), shapes, modules, backbone, head_params)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelShape":
        return cls(**d)


def _inject_modules(config: LoR2CConfig, shape: ModelShape) -> list[str]:
    """Distinct physical modules hit by the inject targets (GPT-2's fused c_attn counts once)."""
    out = []
    for t in config.inject_targets:
        if t not in shape.proj_shapes:
            raise LayerStackError(f"inject target {t!r} has no known shape in this model")
        if shape.proj_modules.get(t, t) not in [shape.proj_modules.get(o, o) for o in out]:
            out.append(t)
    return out


def bypass_params(config: LoR2CConfig, shape: ModelShape) -> int:
    spans = config.resolved_spans(shape.num_layers)
    d = shape.hidden_size
    per_b = sum(d * config.bypass_rank(i) for i in range(len(spans)))
    if config.share_a:
        return per_b + (config.rank if config.ranks is None else config.ranks[0]) * d if spans else 0
    return 2 * per_b


def lora_params_per_layer(config: LoR2CConfig, shape: ModelShape) -> int:
    r = config.lora_rank
    return sum(r * sum(shape.proj_shapes[t]) for t in _inject_modules(config, shape))


def count_params(config: LoR2CConfig, shape: ModelShape) -> int:
    """Exact number of trainable adapter parameters (bypasses + injected LoRA) of the structure the
    config describes now (the head is ``shape.head_params``, reported apart)."""
    config.validate(shape.num_layers)
    return bypass_params(config, shape) + len(config.injected) * lora_params_per_layer(config, shape)


def planned_params(config: LoR2CConfig, shape: ModelShape) -> dict[str, int]:
    """Parameter counts over a training run that performs the config's merges and injections.

    Only the operations that succeed whatever the spectrum picks are planned (``guaranteed_events``);
    the training loop schedules the same counts, so ``final`` is what training ends with. Returns
    ``initial``, ``final`` and ``peak``, the most trainable parameters at any time for any order of the
    operations. Exact because merges and injections need one rank for all bypasses (``validate``).
    """
    initial = count_params(config, shape)
    merges, injects = guaranteed_events(config, shape.num_layers)
    bypasses = len(config.resolved_spans(shape.num_layers))
    rank = config.bypass_rank(0) if bypasses else config.rank
    d = shape.hidden_size
    per_b = (1 if config.share_a else 2) * rank * d    # what one bypass owns
    lora = lora_params_per_layer(config, shape)
    left = bypasses - merges - injects
    # A merge drops the upper bypass; an injection swaps a bypass for LoRA; a shared A goes with the last bypass.
    final = initial - (merges + injects) * per_b + injects * lora
    if config.share_a and bypasses and not left:
        final -= rank * d
    peak = initial + injects * max(0, lora - per_b)
    return {"initial": initial, "final": final, "peak": max(peak, initial, final)}


# --------------------------------------------------------------------------------------------------
# The adapted model
# --------------------------------------------------------------------------------------------------
class _BaseSignatureForward:
    """``LoR2CModel.forward`` with the base model's signature (input_ids, attention_mask, labels, ...):
    callers that inspect it, such as the HF Trainer dropping dataset columns the model does not take,
    see what the base takes. A descriptor, not an instance attribute, so deepcopy stays correct."""

    def __get__(self, obj, objtype=None):
        if obj is None:  # the class's view, which transformers' find_labels reads: it takes labels
            return _unbound_forward
        def forward(*args, **kwargs):
            return obj._forward(*args, **kwargs)
        forward.__signature__ = inspect.signature(obj.base_model.forward)
        return forward


def _unbound_forward(self, *args, **kwargs):
    return self._forward(*args, **kwargs)


_P = inspect.Parameter
_unbound_forward.__signature__ = inspect.Signature([
    _P("self", _P.POSITIONAL_OR_KEYWORD), _P("args", _P.VAR_POSITIONAL), _P("labels", _P.KEYWORD_ONLY, default=None),
    _P("kwargs", _P.VAR_KEYWORD)])


class LoR2CModel(nn.Module):
    """A frozen transformer plus LoR2C bypasses (and any injected LoRA). Call it like the base model.
    ``config`` is the base model's transformers config; the LoR2C config is ``lor2c_config``."""

    def __init__(self, model: nn.Module, config: LoR2CConfig):
        super().__init__()
        self.base_model = model
        self.layers_path, layers = find_layer_stack(model, config.layers_path)
        object.__setattr__(self, "_layers", layers)  # already registered inside base_model
        self.lor2c_config = copy.deepcopy(config).validate(len(layers))
        self.lor2c_config.layers_path = self.layers_path
        self.shape = ModelShape.from_model(model, self.lor2c_config)
        self.head_modules = find_head(model, self.lor2c_config.head_modules)
        self.history: list[dict[str, Any]] = []

        for p in model.parameters():
            p.requires_grad_(False)
        self.lor2c_config.head_modules = list(self.head_modules)  # saved explicitly: a later default cannot change it
        for name in self.head_modules:
            for p in _get_path(model, name).parameters():
                p.requires_grad_(True)

        d = self.shape.hidden_size
        ref = next(model.parameters())
        spans = self.lor2c_config.resolved_spans(len(layers))
        self.shared_A = None
        if self.lor2c_config.share_a and spans:
            self.shared_A = nn.Parameter(torch.empty(self.lor2c_config.rank, d))
            nn.init.kaiming_uniform_(self.shared_A, a=5 ** 0.5)
        self.bypasses = nn.ModuleList(
            Bypass(i, j, d, self.lor2c_config.bypass_rank(n), self.lor2c_config.bypass_alpha(n), self.lor2c_config.dropout,
                   own_a=not self.lor2c_config.share_a)
            for n, (i, j) in enumerate(spans))
        self.injections = nn.ModuleDict()
        self._lora_hooks: dict[str, Any] = {}
        for k in self.lor2c_config.injected:
            self._add_lora(k)
        self.to(device=ref.device)

        self._inputs: dict[int, torch.Tensor] = {}
        self._hooks = []
        for idx, layer in enumerate(layers):
            self._hooks.append(layer.register_forward_pre_hook(self._make_capture(idx), with_kwargs=True))
            self._hooks.append(layer.register_forward_hook(self._make_add(idx)))

    # -- hooks ---------------------------------------------------------------------------------------
    def _make_capture(self, idx: int):
        def capture(module, args, kwargs):
            if any(b.first == idx for b in self.bypasses):
                self._inputs[idx] = args[0] if args else kwargs["hidden_states"]
        return capture

    def _make_add(self, idx: int):
        def add(module, args, output):
            ending = [b for b in self.bypasses if b.last == idx]
            if not ending:
                return None
            hidden = output[0] if isinstance(output, tuple) else output
            for b in ending:
                hidden = hidden + b(self._inputs[b.first], self.shared_A).to(hidden.dtype)
            return (hidden,) + tuple(output[1:]) if isinstance(output, tuple) else hidden
        return add

    def _forward(self, *args, **kwargs):
        try:
            return self.base_model(*args, **kwargs)
        finally:
            self._inputs.clear()

    forward = _BaseSignatureForward()

    @property
    def config(self):
        """The base model's transformers config (as PEFT's ``PeftModel.config``); LoR2C's is ``lor2c_config``."""
        return self.base_model.config

    # -- structure -----------------------------------------------------------------------------------
    @property
    def spans(self) -> list[list[int]]:
        return [b.span for b in self.bypasses]

    def _sync_config(self) -> None:
        self.lor2c_config.spans = self.spans
        if self.lor2c_config.ranks is not None:
            self.lor2c_config.ranks = [b.rank for b in self.bypasses]
        if self.lor2c_config.alphas is not None:
            self.lor2c_config.alphas = [b.alpha for b in self.bypasses]

    def _add_lora(self, layer_idx: int) -> None:
        for key, mod, fan_in, fan_out in injection_points(self._layers[layer_idx], layer_idx,
                                                          self.lor2c_config.inject_targets):
            ref = next(self.base_model.parameters())
            lora = InjectedLoRA(fan_in, fan_out, self.lor2c_config.lora_rank, self.lor2c_config.inject_alpha,
                                self.lor2c_config.dropout).to(ref.device)
            self.injections[key] = lora

            def add(module, args, output, lora=lora):
                return output + lora(args[0]).to(output.dtype)
            self._lora_hooks[key] = mod.register_forward_hook(add)

    def bypass_scores(self, criterion: str | None = None, k: int | None = None) -> list[dict[str, Any]]:
        """Spectrum score of each bypass's unscaled update B @ A (the paper's SFS)."""
        criterion = criterion or self.lor2c_config.merge_criterion
        k = k or self.lor2c_config.sfs_k
        out = []
        with torch.no_grad():
            for b in self.bypasses:
                a = b.A if b.A is not None else self.shared_A
                s = low_rank_singular_values(b.B, a, self.shape.hidden_size)
                out.append({"span": b.span, "score": sfs_score(s, criterion, k),
                            "top_singular_values": [round(float(x), 6) for x in s[: min(4, b.rank)]]})
        return out

    def merge_candidates(self) -> list[tuple[int, float]]:
        """(index of the lower bypass, summed score) for each pair of bypasses on consecutive layers
        whose joint span fits ``max_merge_span``."""
        scores = self.bypass_scores()
        out = []
        for n in range(len(self.bypasses) - 1):
            lo, hi = self.bypasses[n], self.bypasses[n + 1]
            if can_merge(lo.span, hi.span, self.lor2c_config.max_merge_span):
                out.append((n, scores[n]["score"] + scores[n + 1]["score"]))
        return out

    def merge(self) -> dict[str, Any] | None:
        """Merge the pair on consecutive layers with the weakest summed spectrum into one bypass spanning both.

        The merged bypass keeps the lower bypass's A and B (as the reference code does) but, unlike the
        reference code, as the same parameter objects, so it goes on training. Returns the event, or
        None when no pair may merge.
        """
        cands = self.merge_candidates()
        if not cands:
            return None
        n, total = min(cands, key=lambda c: c[1])
        lo, hi = self.bypasses[n], self.bypasses[n + 1]
        event = {"op": "merge", "spans": [lo.span, hi.span], "into": [lo.first, hi.last],
                 "score": total, "scores": self.bypass_scores()}
        lo.last = hi.last
        del self.bypasses[n + 1]
        self._sync_config()
        self.history.append(event)
        return event

    def inject(self) -> dict[str, Any] | None:
        """Replace the single-layer bypass with the strongest spectrum by LoRA on that layer's targets.

        Deliberate difference from the reference code: there the injected LoRA weights are re-frozen at
        every epoch start, so they barely train; here they stay trainable until the end.
        Returns the event, or None when no single-layer bypass is left.
        """
        scores = self.bypass_scores()
        cands = [n for n, b in enumerate(self.bypasses)
                 if b.first == b.last and b.first not in self.lor2c_config.injected]
        if not cands:
            return None
        n = max(cands, key=lambda c: scores[c]["score"])
        layer_idx = self.bypasses[n].first
        event = {"op": "inject", "layer": layer_idx, "span": self.bypasses[n].span,
                 "score": scores[n]["score"], "scores": scores}
        del self.bypasses[n]
        if not len(self.bypasses):
            self.shared_A = None  # nothing uses it any more
        self.lor2c_config.injected = sorted(self.lor2c_config.injected + [layer_idx])
        self._sync_config()
        self._add_lora(layer_idx)
        self.history.append(event)
        return event

    # -- parameters ----------------------------------------------------------------------------------
    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        sd = {}
        if self.shared_A is not None:
            sd["shared_A"] = self.shared_A
        for n, b in enumerate(self.bypasses):
            if b.A is not None:
                sd[f"bypasses.{n}.A"] = b.A
            sd[f"bypasses.{n}.B"] = b.B
        for key, lora in self.injections.items():
            sd[f"injections.{key}.A"] = lora.A
            sd[f"injections.{key}.B"] = lora.B
        return sd

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        return {f"head.{name}.{pn}": p for name in self.head_modules
                for pn, p in _get_path(self.base_model, name).named_parameters()}

    def adapter_parameters(self) -> list[nn.Parameter]:
        return list(self.adapter_state_dict().values())

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def num_adapter_params(self) -> int:
        return sum(p.numel() for p in self.adapter_parameters() if p.requires_grad)

    def num_head_params(self) -> int:
        return sum(p.numel() for p in self.head_state_dict().values() if p.requires_grad)

    def count_params(self) -> int:
        """The analytic count for the current structure (equals ``num_adapter_params``)."""
        return count_params(self.lor2c_config, self.shape)

    def unload(self) -> nn.Module:
        """Remove every hook and return the base model (its weights untouched)."""
        for h in self._hooks:
            h.remove()
        for h in self._lora_hooks.values():
            h.remove()
        self._hooks, self._lora_hooks = [], {}
        return self.base_model

    # -- save / load ---------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | Path, extra: dict[str, Any] | None = None,
                        extra_files: dict[str, str] | None = None) -> Path:
        """Write lor2c_config.json and lor2c_model.safetensors; atomic (a crash leaves no half folder)."""
        from safetensors.torch import save_file

        base_cfg = getattr(self.base_model, "config", None)
        meta = {
            "format_version": FORMAT_VERSION,
            "method": "lor2c",
            "base_model_name_or_path": getattr(base_cfg, "_name_or_path", None) or getattr(self.base_model, "name_or_path", None),
            "model_type": getattr(base_cfg, "model_type", None),
            "architecture": type(self.base_model).__name__,
            "num_labels": getattr(base_cfg, "num_labels", None),
            "problem_type": getattr(base_cfg, "problem_type", None),
            "head_modules": self.head_modules,
            "layers_path": self.layers_path,
            "lor2c": self.lor2c_config.to_dict(),
            "shape": self.shape.to_dict(),
            "adapter_params": self.num_adapter_params(),
            "head_params": self.num_head_params(),
            "history": self.history,
        }
        if extra:
            meta.update(extra)
        tensors = {k: v.detach().cpu().contiguous() for k, v in {**self.adapter_state_dict(), **self.head_state_dict()}.items()}

        def write(tmp: Path) -> None:
            save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "method": "lor2c"})
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2, default=str))
            for name, text in (extra_files or {}).items():
                (tmp / name).write_text(text)

        return write_folder_atomically(folder, write)

    @classmethod
    def from_pretrained(cls, model: nn.Module, folder: str | Path) -> "LoR2CModel":
        """Attach a saved adapter (and its head weights) to a fresh base model."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        meta = read_adapter_config(folder)
        cfg_path, weights_path = adapter_files(folder)
        try:
            config = LoR2CConfig.from_dict(meta["lor2c"])
        except (ConfigError, TypeError) as e:
            raise AdapterLoadError(f"{cfg_path}: invalid LoR2C config ({e})") from None
        if config.head_modules is None and isinstance(meta.get("head_modules"), list):
            config.head_modules = meta["head_modules"]  # folders saved before the config named its head
        wrapped = cls(model, config)
        try:
            tensors = load_file(str(weights_path))
        except (SafetensorError, OSError, ValueError) as e:
            raise AdapterLoadError(f"{weights_path}: not a readable safetensors file ({e})") from None
        expected = {**wrapped.adapter_state_dict(), **wrapped.head_state_dict()}
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        if missing or unexpected:
            raise AdapterLoadError(
                f"{weights_path} does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}")
        with torch.no_grad():
            for k, p in expected.items():
                if tuple(tensors[k].shape) != tuple(p.shape):
                    raise AdapterLoadError(f"{k}: saved shape {tuple(tensors[k].shape)} != model shape {tuple(p.shape)}")
                p.copy_(tensors[k].to(p.dtype))
        wrapped.history = list(meta.get("history", []))
        return wrapped


def write_folder_atomically(folder: str | Path, write) -> Path:
    """Build a folder in a temporary sibling with ``write(tmp)``, then swap it in: a crash never leaves a
    half-written folder under the final name."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # mkdir, not mkdtemp: mkdtemp makes the folder 0700 whatever the umask; others may need to read it
    tmp = folder.parent / f".{folder.name}.{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        write(tmp)
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def adapter_files(folder: str | Path) -> tuple[Path, Path]:
    """The config and weights files of an adapter folder: LoR2C's names, else the names used before 0.2."""
    folder = Path(folder)
    if (folder / CONFIG_NAME).is_file() or not (folder / LEGACY_CONFIG_NAME).is_file():
        return folder / CONFIG_NAME, folder / WEIGHTS_NAME
    return folder / LEGACY_CONFIG_NAME, folder / LEGACY_WEIGHTS_NAME


def read_adapter_config(folder: str | Path) -> dict[str, Any]:
    folder = Path(folder)
    cfg_path, weights_path = adapter_files(folder)
    if not folder.is_dir():
        raise AdapterLoadError(f"adapter folder {folder} does not exist")
    if not cfg_path.is_file() or not weights_path.is_file():
        raise AdapterLoadError(f"{folder} is not an autolor2c adapter folder (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        meta = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AdapterLoadError(f"{cfg_path}: invalid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("method") not in ("lor2c", "lora"):
        raise AdapterLoadError(f"{cfg_path}: not an autolor2c adapter (method={meta.get('method') if isinstance(meta, dict) else None!r})")
    if meta["method"] == "lor2c" and "lor2c" not in meta:
        raise AdapterLoadError(f"{cfg_path}: missing the 'lor2c' section")
    version = meta.get("format_version")
    if meta["method"] == "lor2c" and not (isinstance(version, int) and 1 <= version <= FORMAT_VERSION):
        newer = isinstance(version, int) and version > FORMAT_VERSION
        raise AdapterLoadError(
            f"{cfg_path}: format_version {version!r} " + (
                f"is newer than this autolor2c reads (up to {FORMAT_VERSION}); upgrade autolor2c to load it"
                if newer else f"is not a version this autolor2c knows (1..{FORMAT_VERSION})"))
    return meta


def get_lor2c_model(model: nn.Module, config: LoR2CConfig) -> LoR2CModel:
    """Attach LoR2C to ``model`` (like ``peft.get_peft_model``): backbone frozen, head and adapter trainable."""
    return LoR2CModel(model, config)
