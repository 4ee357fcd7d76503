"""A super-adapter: every LoR2C structure a space can place, in one set of shared weights.

It holds one bypass for every span up to ``max_span`` layers long from every layer, each with its own A and B
and a second B for the shared-A variant (ShareLoR2C), one shared A, and the injected LoRA of every layer's
inject targets. Ranks are nested as in DyLoRA: rank r uses the first r rows of A and the first r columns of B.
``activate(config)`` switches one structure on; the model then computes exactly what a ``LoR2CModel`` of that
structure computes with the same weights (``structure_state`` hands them over). Training it over many
structures (weight sharing) and scoring structures inside it is a search's business, not this module's.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import ConfigError, LoR2CConfig
from .layer import _lora_init_, low_rank_singular_values, sfs_score
from .model import ModelShape, _get_path, find_head, find_layer_stack, injection_points
from .structure import can_merge


def span_key(first: int, last: int) -> str:
    return f"{first}-{last}"


class SuperAdapter(nn.Module):
    """A frozen transformer with every bypass span (up to ``max_span`` layers) and every layer's injected LoRA,
    ranks nested up to ``max_rank`` (bypasses) and ``max_lora_rank`` (LoRA). Call it like the base model once a
    structure is active. The head is shared by all structures."""

    def __init__(self, model: nn.Module, *, max_span: int, max_rank: int, max_lora_rank: int,
                 inject_targets: list[str] | None = None, layers_path: str | None = None,
                 head_modules: list[str] | None = None):
        super().__init__()
        if max_span < 1 or max_rank < 1 or max_lora_rank < 1:
            raise ValueError(f"max_span, max_rank and max_lora_rank must be >= 1, got {max_span}, {max_rank}, "
                             f"{max_lora_rank}")
        self.base_model = model
        self.layers_path, layers = find_layer_stack(model, layers_path)
        object.__setattr__(self, "_layers", layers)
        probe = LoR2CConfig(inject_targets=list(inject_targets or ["query", "value"]), layers_path=self.layers_path,
                            head_modules=head_modules)
        self.shape = ModelShape.from_model(model, probe)
        self.head_modules = find_head(model, head_modules)
        self.inject_targets = list(probe.inject_targets)
        self.max_span, self.max_rank, self.max_lora_rank = int(max_span), int(max_rank), int(max_lora_rank)
        for p in model.parameters():
            p.requires_grad_(False)
        for name in self.head_modules:
            for p in _get_path(model, name).parameters():
                p.requires_grad_(True)

        n, d = len(layers), self.shape.hidden_size
        self.spans_available = [(i, j) for i in range(n) for j in range(i, min(n, i + self.max_span))]
        self.A = nn.ParameterDict()        # own A of each span
        self.B = nn.ParameterDict()        # B paired with the span's own A
        self.B_shared = nn.ParameterDict() # B paired with the shared A
        for i, j in self.spans_available:
            k = span_key(i, j)
            self.A[k] = nn.Parameter(torch.empty(self.max_rank, d))
            _lora_init_(self.A[k])
            self.B[k] = nn.Parameter(torch.zeros(d, self.max_rank))
            self.B_shared[k] = nn.Parameter(torch.zeros(d, self.max_rank))
        self.shared_A = nn.Parameter(torch.empty(self.max_rank, d))
        _lora_init_(self.shared_A)
        # Injected LoRA of every layer, keyed as LoR2CModel keys its injections.
        self.lora_A, self.lora_B = nn.ParameterDict(), nn.ParameterDict()
        self._lora_hooks = []
        self._lora_layer: dict[str, int] = {}
        for idx, layer in enumerate(layers):
            for key, mod, fan_in, fan_out in injection_points(layer, idx, self.inject_targets):
                self.lora_A[key] = nn.Parameter(torch.empty(self.max_lora_rank, fan_in))
                _lora_init_(self.lora_A[key])
                self.lora_B[key] = nn.Parameter(torch.zeros(fan_out, self.max_lora_rank))
                self._lora_layer[key] = idx
                self._lora_hooks.append(mod.register_forward_hook(self._make_lora(key)))
        self.to(device=next(model.parameters()).device)

        self.active: LoR2CConfig | None = None
        self._inputs: dict[int, torch.Tensor] = {}
        self._hooks = []
        for idx, layer in enumerate(layers):
            self._hooks.append(layer.register_forward_pre_hook(self._make_capture(idx), with_kwargs=True))
            self._hooks.append(layer.register_forward_hook(self._make_add(idx)))

    # -- the active structure ------------------------------------------------------------------------
    def check(self, config: LoR2CConfig) -> LoR2CConfig:
        """``config`` validated against this super-adapter: every span, rank and LoRA rank must be inside it."""
        cfg = copy.deepcopy(config).validate(len(self._layers))
        for n, (i, j) in enumerate(cfg.resolved_spans(len(self._layers))):
            if j - i + 1 > self.max_span:
                raise ConfigError(f"span {[i, j]} is longer than this super-adapter's max_span={self.max_span}")
            if cfg.bypass_rank(n) > self.max_rank:
                raise ConfigError(f"rank {cfg.bypass_rank(n)} is above this super-adapter's max_rank={self.max_rank}")
        if cfg.injected and cfg.lora_rank > self.max_lora_rank:
            raise ConfigError(f"LoRA rank {cfg.lora_rank} is above max_lora_rank={self.max_lora_rank}")
        if list(cfg.inject_targets) != self.inject_targets and cfg.injected:
            raise ConfigError(f"inject_targets {cfg.inject_targets} differ from this super-adapter's {self.inject_targets}")
        return cfg

    def activate(self, config: LoR2CConfig) -> LoR2CConfig:
        """Switch on the structure ``config`` describes now (its spans, ranks, alphas, shared A, injected
        layers); returns the validated copy in use."""
        self.active = self.check(config)
        n = len(self._layers)
        self._bypasses = [(i, j, self.active.bypass_rank(b), self.active.bypass_alpha(b))
                          for b, (i, j) in enumerate(self.active.resolved_spans(n))]
        self._starts = {i for i, _, _, _ in self._bypasses}
        self._injected = set(self.active.injected)
        return self.active

    def _bypass_delta(self, first: int, last: int, rank: int, alpha: float, h: torch.Tensor) -> torch.Tensor:
        k = span_key(first, last)
        if self.active.share_a:
            a, b = self.shared_A[:rank], self.B_shared[k][:, :rank]
        else:
            a, b = self.A[k][:rank], self.B[k][:, :rank]
        x = F.dropout(h, self.active.dropout, self.training).to(a.dtype)
        return F.linear(F.linear(x, a), b) * (alpha / rank)

    def _make_capture(self, idx: int):
        def capture(module, args, kwargs):
            if self.active is not None and idx in self._starts:
                self._inputs[idx] = args[0] if args else kwargs["hidden_states"]
        return capture

    def _make_add(self, idx: int):
        def add(module, args, output):
            if self.active is None:
                return None
            ending = [b for b in self._bypasses if b[1] == idx]
            if not ending:
                return None
            hidden = output[0] if isinstance(output, tuple) else output
            for first, last, rank, alpha in ending:
                hidden = hidden + self._bypass_delta(first, last, rank, alpha, self._inputs[first]).to(hidden.dtype)
            return (hidden,) + tuple(output[1:]) if isinstance(output, tuple) else hidden
        return add

    def _make_lora(self, key: str):
        def add(module, args, output):
            if self.active is None or self._lora_layer[key] not in self._injected:
                return None
            r = self.active.lora_rank
            a, b = self.lora_A[key][:r], self.lora_B[key][:, :r]
            x = F.dropout(args[0], self.active.dropout, self.training).to(a.dtype)
            return output + (F.linear(F.linear(x, a), b) * (self.active.inject_alpha / r)).to(output.dtype)
        return add

    def forward(self, *args, **kwargs):
        if self.active is None:
            raise RuntimeError("no structure is active: call activate(config) first")
        try:
            return self.base_model(*args, **kwargs)
        finally:
            self._inputs.clear()

    @property
    def config(self):
        return self.base_model.config

    # -- parameters ----------------------------------------------------------------------------------
    def active_parameters(self) -> list[nn.Parameter]:
        """The tensors the active structure reads (the head included): what a step on it trains."""
        out = [p for n in self.head_modules for p in _get_path(self.base_model, n).parameters()]
        for i, j, _, _ in self._bypasses:
            k = span_key(i, j)
            out += [self.B_shared[k]] if self.active.share_a else [self.A[k], self.B[k]]
        if self.active.share_a and self._bypasses:
            out.append(self.shared_A)
        out += [p for key, idx in self._lora_layer.items() if idx in self._injected
                for p in (self.lora_A[key], self.lora_B[key])]
        return out

    def structure_state(self, config: LoR2CConfig | None = None) -> dict[str, torch.Tensor]:
        """The weights of ``config``'s structure (the active one by default), named as
        ``LoR2CModel.adapter_state_dict`` names them, plus the head (``head.<module>.<param>``)."""
        cfg = self.check(config) if config is not None else self.active
        n = len(self._layers)
        sd: dict[str, torch.Tensor] = {}
        spans = cfg.resolved_spans(n)
        if cfg.share_a and spans:
            sd["shared_A"] = self.shared_A[:cfg.rank].detach().clone()
        for b, (i, j) in enumerate(spans):
            k, r = span_key(i, j), cfg.bypass_rank(b)
            if not cfg.share_a:
                sd[f"bypasses.{b}.A"] = self.A[k][:r].detach().clone()
            sd[f"bypasses.{b}.B"] = (self.B_shared if cfg.share_a else self.B)[k][:, :r].detach().clone()
        for key, idx in self._lora_layer.items():
            if idx in cfg.injected:
                sd[f"injections.{key}.A"] = self.lora_A[key][:cfg.lora_rank].detach().clone()
                sd[f"injections.{key}.B"] = self.lora_B[key][:, :cfg.lora_rank].detach().clone()
        for name in self.head_modules:
            for pn, p in _get_path(self.base_model, name).named_parameters():
                sd[f"head.{name}.{pn}"] = p.detach().clone()
        return sd

    # -- the structural operations, decided by this super-adapter's spectra ---------------------------
    def _scores(self, cfg: LoR2CConfig) -> list[float]:
        out = []
        with torch.no_grad():
            for b, (i, j) in enumerate(cfg.resolved_spans(len(self._layers))):
                k, r = span_key(i, j), cfg.bypass_rank(b)
                a = self.shared_A[:r] if cfg.share_a else self.A[k][:r]
                bb = (self.B_shared if cfg.share_a else self.B)[k][:, :r]
                s = low_rank_singular_values(bb, a, self.shape.hidden_size)
                out.append(sfs_score(s, cfg.merge_criterion, cfg.sfs_k))
        return out

    def merged(self, config: LoR2CConfig) -> LoR2CConfig | None:
        """``config`` after MergeLoR2C's step on these weights: the adjacent pair with the weakest summed
        spectrum becomes one bypass (None when no pair may merge)."""
        cfg = copy.deepcopy(config)
        spans = cfg.resolved_spans(len(self._layers))
        scores = self._scores(cfg)
        cands = [(n, scores[n] + scores[n + 1]) for n in range(len(spans) - 1)
                 if can_merge(spans[n], spans[n + 1], cfg.max_merge_span)]
        if not cands:
            return None
        n = min(cands, key=lambda c: c[1])[0]
        spans[n] = [spans[n][0], spans[n + 1][1]]
        del spans[n + 1]
        for name in ("ranks", "alphas"):
            v = getattr(cfg, name)
            if v is not None:
                setattr(cfg, name, v[:n + 1] + v[n + 2:])
        cfg.spans = spans
        return cfg

    def injected(self, config: LoR2CConfig) -> LoR2CConfig | None:
        """``config`` after InjectLoR2C's step on these weights: the single-layer bypass with the strongest
        spectrum gives way to LoRA on its layer (None when no single-layer bypass is left)."""
        cfg = copy.deepcopy(config)
        spans = cfg.resolved_spans(len(self._layers))
        scores = self._scores(cfg)
        cands = [n for n, (i, j) in enumerate(spans) if i == j and i not in cfg.injected]
        if not cands:
            return None
        n = max(cands, key=lambda c: scores[c])
        layer = spans[n][0]
        del spans[n]
        for name in ("ranks", "alphas"):
            v = getattr(cfg, name)
            if v is not None:
                setattr(cfg, name, v[:n] + v[n + 1:])
        cfg.spans = spans
        cfg.injected = sorted(cfg.injected + [layer])
        return cfg

    def extra_repr(self) -> str:
        return (f"spans={len(self.spans_available)} (up to {self.max_span} layers), max_rank={self.max_rank}, "
                f"max_lora_rank={self.max_lora_rank}, injectable={len(self._lora_layer)} projections")

    def describe(self) -> dict[str, Any]:
        return {"max_span": self.max_span, "max_rank": self.max_rank, "max_lora_rank": self.max_lora_rank,
                "inject_targets": self.inject_targets, "spans": [list(s) for s in self.spans_available],
                "head_modules": self.head_modules, "layers_path": self.layers_path}
