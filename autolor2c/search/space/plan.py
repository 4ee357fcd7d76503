"""The plan a trial produces from a space's sampled values: the adapter (spans tiled from the layers, merges
and injections clamped to what always succeeds, no dead structure in a ranged space) and the training
settings. The space (search_space.py) calls :func:`build_plan` once per suggestion; both read the keys of a
space file from schema.py.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from autolor2c.errors import UserError
from autolor2c.lor2c.config import ConfigError, LoR2CConfig
from autolor2c.lor2c.structure import guaranteed_events, structure_limits

from .schema import (_FLOAT_FIELDS, _LOR2C_FIELDS, LORA_DEFAULTS, LORA_KEYS, METHODS, RANGE_KEYS, TRAIN_KEYS, ParamSpec,
                     _is_int)

__all__ = ["TrialPlan", "build_plan", "spans_from_mask", "is_dead"]


# --------------------------------------------------------------------------------------------------
# The plan a trial produces
# --------------------------------------------------------------------------------------------------
@dataclass
class TrialPlan:
    """What one trial trains: the adapter, the training settings, and what was clamped.

    ``adapter`` is a validated :class:`LoR2CConfig` for ``lor2c`` and a dict with ``rank``, ``alpha``,
    ``dropout``, ``target_modules`` and ``layers`` (explicit layer indices) for ``lora``. ``clamped``
    maps a key to ``{"suggested": x, "used": y}`` whenever the sampled value was adjusted.
    """

    method: str
    adapter: LoR2CConfig | dict[str, Any]
    train: dict[str, Any] = field(default_factory=dict)
    num_layers: int | None = None
    space: str = ""
    clamped: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        adapter = self.adapter.to_dict() if isinstance(self.adapter, LoR2CConfig) else copy.deepcopy(self.adapter)
        return {"space": self.space, "method": self.method, "num_layers": self.num_layers,
                "adapter": adapter, "train": copy.deepcopy(self.train), "clamped": copy.deepcopy(self.clamped)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrialPlan":
        if not isinstance(data, Mapping):
            raise UserError(f"bad trial plan: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {"space", "method", "num_layers", "adapter", "train", "clamped"})
        if unknown:
            raise UserError(f"bad trial plan: unknown key(s) {', '.join(map(str, unknown))}")
        method = data.get("method")
        adapter = data.get("adapter")
        num_layers = data.get("num_layers")
        if num_layers is not None and (not _is_int(num_layers) or num_layers < 1):
            raise UserError(f"bad trial plan: num_layers {num_layers!r} is not a positive integer")
        if method == "lor2c":
            if not isinstance(adapter, Mapping):
                raise UserError("bad trial plan: a lor2c adapter must be a mapping of LoR2CConfig fields")
            try:
                cfg = LoR2CConfig.from_dict(copy.deepcopy(dict(adapter)))
                if isinstance(cfg.dropout, int):
                    cfg.dropout = float(cfg.dropout)
                cfg.validate(num_layers)
            except ConfigError as e:
                raise UserError(f"bad trial plan: {e}") from None
            built: LoR2CConfig | dict[str, Any] = cfg
        elif method == "lora":
            if not isinstance(adapter, Mapping) or set(adapter) != set(LORA_KEYS):
                raise UserError(f"bad trial plan: a lora adapter needs exactly the keys {', '.join(LORA_KEYS)}")
            built = copy.deepcopy(dict(adapter))
        else:
            raise UserError(f"bad trial plan: method {method!r} is not one of {', '.join(METHODS)}")
        train = data.get("train") or {}
        clamped = data.get("clamped") or {}
        if not isinstance(train, Mapping) or not isinstance(clamped, Mapping):
            raise UserError("bad trial plan: 'train' and 'clamped' must be mappings")
        return cls(method=method, adapter=built, train=copy.deepcopy(dict(train)), num_layers=num_layers,
                   space=str(data.get("space") or ""), clamped=copy.deepcopy(dict(clamped)))


class SpaceView(Protocol):
    """What a plan reads of its ``SearchSpace`` (search_space.py builds plans with this module, so the class is
    not imported here)."""
    name: str
    method: str
    source: str
    params: dict[str, ParamSpec]


# --------------------------------------------------------------------------------------------------
# Span construction
# --------------------------------------------------------------------------------------------------
def spans_from_mask(mask: list[bool], span_length: int) -> list[list[int]]:
    """Spans from a per-layer mask: each switched-on layer not already covered starts a span of up to
    ``span_length`` layers (cut at the top layer). The result is sorted and never overlaps; an
    all-off mask gives ``[]`` (callers force a layer on first)."""
    if not _is_int(span_length) or span_length < 1:
        raise ValueError(f"span_length must be an integer >= 1, got {span_length!r}")
    n = len(mask)
    spans: list[list[int]] = []
    covered = -1
    for k, on in enumerate(mask):
        if on and k > covered:
            covered = min(k + span_length - 1, n - 1)
            spans.append([k, covered])
    return spans


# --------------------------------------------------------------------------------------------------
# Building a plan
# --------------------------------------------------------------------------------------------------
def _layer_indices(space: SpaceView, values: dict[str, Any], num_layers: int,
                   clamped: dict[str, dict[str, Any]]) -> list[int]:
    if values.get("bypass_from") is not None:  # every layer between the two ends (to the top by default)
        ends = []
        for key in RANGE_KEYS:
            k = values.get(key, num_layers - 1)
            if k is None:
                k = num_layers - 1
            if not -num_layers <= k < num_layers:
                raise UserError(f"{space.source}: params.{key}: layer {k} is outside this "
                                f"{num_layers}-layer model (0..{num_layers - 1})")
            ends.append(k % num_layers)
        return list(range(min(ends), max(ends) + 1))
    if "layers" not in values:
        return list(range(num_layers))
    raw = values["layers"]
    if space.params["layers"].type == "layer_mask":
        on = [k for k, b in enumerate(raw) if b]
        if not on:  # all off: keep the trial alive with the top layer, closest to the head
            on = [num_layers - 1]
            clamped["layers"] = {"suggested": [], "used": on}
        return on
    out = []
    for k in raw:
        if not -num_layers <= k < num_layers:
            raise UserError(f"{space.source}: params.layers: layer {k} is outside this "
                            f"{num_layers}-layer model (0..{num_layers - 1})")
        out.append(k % num_layers)
    if len(set(out)) != len(out):
        raise UserError(f"{space.source}: params.layers: {raw!r} names a layer twice for {num_layers} layers")
    return sorted(out)

def build_plan(space: SpaceView, values: dict[str, Any], num_layers: int) -> TrialPlan:
    """The plan of a trial whose sampled values are ``values``: the adapter (structural conflicts clamped and
    recorded), the training settings."""
    clamped: dict[str, dict[str, Any]] = {}
    train = {k: values[k] for k in TRAIN_KEYS if k in values}
    if space.method == "lora":
        adapter = {k: values[k] if k in values else copy.deepcopy(LORA_DEFAULTS[k]) for k in LORA_KEYS}
        adapter["alpha"] = float(adapter["alpha"])
        adapter["dropout"] = float(adapter["dropout"])
        adapter["target_modules"] = list(adapter["target_modules"])
        adapter["layers"] = _layer_indices(space, values, num_layers, clamped)
        return TrialPlan("lora", adapter, train, num_layers, space.name, clamped)

    kw = {k: v for k, v in values.items() if k in _LOR2C_FIELDS}
    for k in _FLOAT_FIELDS:
        if k in kw and _is_int(kw[k]):
            kw[k] = float(kw[k])
    if kw.get("alphas") is not None:
        kw["alphas"] = [float(a) for a in kw["alphas"]]
    ranged = "bypass_to" in space.params
    if "spans" not in kw and ("layers" in values or "bypass_from" in values or "span_length" in values):
        on = _layer_indices(space, values, num_layers, clamped)
        length = values.get("span_length", 1)
        if ranged:  # spans tile the range and stop at its end
            on, length = _alive_range(on, length, num_layers, clamped)
            kw["spans"] = [[a, min(a + length - 1, on[-1])] for a in range(on[0], on[-1] + 1, length)]
        else:
            kw["spans"] = spans_from_mask([k in set(on) for k in range(num_layers)], length)
    cfg = LoR2CConfig(**kw)
    # Only what succeeds whatever the spectrum picks (lor2c's merge rule), and a meaningful sfs_k.
    limits = structure_limits(cfg, num_layers)
    for k, limit in limits.items():
        if getattr(cfg, k) > limit:
            clamped[k] = {"suggested": getattr(cfg, k), "used": limit}
            setattr(cfg, k, limit)
    if ranged:
        _keep_a_bypass_below_the_top(cfg, num_layers, clamped)
    try:
        cfg.validate(num_layers)
    except ConfigError as e:  # only fixed values that do not fit this model get here
        raise UserError(f"{space.source}: {e} (for a {num_layers}-layer model)") from None
    return TrialPlan("lor2c", cfg, train, num_layers, space.name, clamped)


# --------------------------------------------------------------------------------------------------
# No dead structure: a bypass that ends on the top layer only changes the [CLS] vector the head reads, by
# a low-rank map of an earlier [CLS] vector, which the trained head nearly does alone (measured: every
# such structure scored what the head alone scores). A ranged space keeps a bypass ending below the top.
# --------------------------------------------------------------------------------------------------
def _alive_range(layers: list[int], span_length: int, num_layers: int,
                 clamped: dict[str, dict[str, Any]]) -> tuple[list[int], int]:
    top = num_layers - 1
    if num_layers < 2 or not layers or layers[-1] != top or layers[0] + span_length - 1 < top:
        return layers, span_length  # some span already ends below the top
    if layers[0] < top:  # the first span reached the top: shorten spans so it ends just below
        clamped["span_length"] = {"suggested": span_length, "used": top - layers[0]}
        return layers, top - layers[0]
    clamped["bypass_from"] = {"suggested": top, "used": top - 1}  # only the top layer: add the one below
    return [top - 1, top], 1


def is_dead(config: LoR2CConfig, num_layers: int) -> bool:
    """True when every bypass may end on the top layer after the merges that always succeed, and no layer is
    injected: a structure that trains nothing the head cannot do alone."""
    merges, injects = guaranteed_events(config, num_layers)
    if injects > 0 or config.injected:
        return False
    spans = config.resolved_spans(num_layers)
    if not spans or spans[-1][1] < num_layers - 1:
        return False  # every bypass ends below the top
    return len(spans) - merges < 2  # merges may leave one span, ending on the top


def _keep_a_bypass_below_the_top(cfg: LoR2CConfig, num_layers: int, clamped: dict[str, dict[str, Any]]) -> None:
    # with a top-ending span, merges may all land on it: leave at least two spans (or inject)
    spans = cfg.resolved_spans(num_layers)
    if num_layers < 2 or not spans or spans[-1][1] != num_layers - 1 or cfg.inject_count > 0:
        return
    limit = max(0, len(spans) - 2)
    if cfg.merge_count > limit:
        prev = clamped.get("merge_count", {}).get("suggested", cfg.merge_count)
        clamped["merge_count"] = {"suggested": prev, "used": limit}
        cfg.merge_count = limit
