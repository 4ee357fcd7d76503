"""LoR2CConfig: everything that defines a LoR2C adapter, as a dataclass that round-trips to JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autolor2c.errors import UserError

CRITERIA = ("mean", "topk")


class ConfigError(UserError):
    """A LoR2CConfig value is invalid; the message names the field and the value."""


@dataclass
class LoR2CConfig:
    """A LoR2C adapter.

    ``spans`` lists the bypasses as inclusive layer ranges ``[i, j]``: the bypass takes the hidden state
    entering layer ``i`` and adds ``B @ A @ dropout(h) * alpha / r`` to the output of layer ``j``.
    ``None`` means the paper's default: one single-layer bypass on every layer. ``ranks``/``alphas``
    override ``rank``/``alpha`` per bypass. ``injected`` lists layers whose bypass was replaced by
    LoRA on ``inject_targets`` (filled in by inject operations, or given to start with).
    """

    spans: list[list[int]] | None = None
    rank: int = 8
    alpha: float = 16.0
    ranks: list[int] | None = None
    alphas: list[float] | None = None
    dropout: float = 0.1
    share_a: bool = False
    # MergeLoR2C: how many merges during training, how bypasses are scored, the longest span allowed.
    merge_count: int = 0
    merge_criterion: str = "mean"
    sfs_k: int = 2
    max_merge_span: int = 4
    # InjectLoR2C: how many injections, the LoRA put in instead (rank None = rank // 2).
    inject_count: int = 0
    inject_rank: int | None = None
    inject_alpha: float = 16.0
    inject_targets: list[str] = field(default_factory=lambda: ["query", "value"])
    injected: list[int] = field(default_factory=list)
    # Where the layer stack lives (dotted path), when it cannot be found automatically, and the
    # modules trained as the task head (dotted names; None: the pooler if any + classifier/score/pre_classifier).
    layers_path: str | None = None
    head_modules: list[str] | None = None
    method: str = "lor2c"

    # ----------------------------------------------------------------------------------------------
    def resolved_spans(self, num_layers: int) -> list[list[int]]:
        if self.spans is None:
            return [[k, k] for k in range(num_layers) if k not in self.injected]
        return [list(s) for s in self.spans]

    def bypass_rank(self, index: int) -> int:
        return int(self.ranks[index]) if self.ranks is not None else int(self.rank)

    def bypass_alpha(self, index: int) -> float:
        return float(self.alphas[index]) if self.alphas is not None else float(self.alpha)

    @property
    def lora_rank(self) -> int:
        return int(self.inject_rank) if self.inject_rank is not None else max(1, self.rank // 2)

    def validate(self, num_layers: int | None = None) -> "LoR2CConfig":
        def bad(name: str, value: Any, why: str) -> ConfigError:
            return ConfigError(f"LoR2CConfig.{name}={value!r}: {why}")

        if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < 1:
            raise bad("rank", self.rank, "must be an integer >= 1")
        if not (isinstance(self.alpha, (int, float)) and self.alpha > 0):
            raise bad("alpha", self.alpha, "must be > 0")
        if not (isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0):
            raise bad("dropout", self.dropout, "must be in [0, 1)")
        if self.merge_criterion not in CRITERIA:
            raise bad("merge_criterion", self.merge_criterion, f"must be one of {CRITERIA}")
        for name in ("merge_count", "inject_count", "sfs_k", "max_merge_span"):
            v = getattr(self, name)
            low = 0 if name.endswith("count") else 1
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise bad(name, v, f"must be an integer >= {low}")
        if self.inject_rank is not None and (not isinstance(self.inject_rank, int) or self.inject_rank < 1):
            raise bad("inject_rank", self.inject_rank, "must be an integer >= 1 or null")
        if not (isinstance(self.inject_alpha, (int, float)) and self.inject_alpha > 0):
            raise bad("inject_alpha", self.inject_alpha, "must be > 0")
        if not self.inject_targets or not all(isinstance(t, str) and t for t in self.inject_targets):
            raise bad("inject_targets", self.inject_targets, "must be a non-empty list of module names")
        spans = self.spans
        if spans is not None:
            if not isinstance(spans, (list, tuple)):
                raise bad("spans", spans, "must be a list of [first, last] layer pairs")
            prev_end = -1
            for s in spans:
                if (not isinstance(s, (list, tuple)) or len(s) != 2
                        or not all(isinstance(x, int) and not isinstance(x, bool) for x in s)):
                    raise bad("spans", spans, f"entry {s!r} is not a [first, last] pair of integers")
                i, j = s
                if i < 0 or j < i:
                    raise bad("spans", spans, f"span {list(s)} needs 0 <= first <= last")
                if i <= prev_end:
                    raise bad("spans", spans, "spans must be sorted and must not overlap")
                prev_end = j
                if num_layers is not None and j >= num_layers:
                    raise bad("spans", spans, f"span {list(s)} goes past the last layer ({num_layers - 1})")
        n = None if spans is None else len(spans)
        for name in ("ranks", "alphas"):
            v = getattr(self, name)
            if v is None:
                continue
            if n is None:
                raise bad(name, v, "per-bypass values need explicit spans")
            if len(v) != n:
                raise bad(name, v, f"has {len(v)} entries for {n} spans")
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in v):
                raise bad(name, v, "entries must be > 0")
            if name == "ranks" and not all(isinstance(x, int) for x in v):
                raise bad(name, v, "ranks must be integers")
        if self.share_a and self.ranks is not None and len(set(self.ranks)) > 1:
            raise bad("ranks", self.ranks, "a shared A needs one rank for all bypasses")
        if (self.merge_count or self.inject_count) and self.ranks is not None and len(set(self.ranks)) > 1:
            # Which bypass a merge or an injection removes depends on the spectrum during training:
            # with unequal ranks the final parameter count could not be known in advance.
            raise bad("ranks", self.ranks, "merges and injections need one rank for all bypasses")
        smallest_rank = min(self.ranks) if self.ranks else self.rank
        no_bypass = spans is not None and len(spans) == 0  # all injected: nothing is scored any more
        if self.merge_criterion == "topk" and self.sfs_k >= smallest_rank and not no_bypass:
            # The top-k share of at most k non-zero singular values is 1.0 for every bypass.
            raise bad("sfs_k", self.sfs_k, f"the topk criterion needs sfs_k < the smallest bypass rank ({smallest_rank})")
        if len(set(self.injected)) != len(self.injected) or any(
                not isinstance(k, int) or k < 0 for k in self.injected):
            raise bad("injected", self.injected, "must be distinct layer indices")
        if num_layers is not None:
            if any(k >= num_layers for k in self.injected):
                raise bad("injected", self.injected, f"layer index past the last layer ({num_layers - 1})")
            n_bypass = len(self.resolved_spans(num_layers))
            if n_bypass == 0 and not self.injected:
                raise bad("spans", spans, "the adapter has no bypass and no injected layer")
        return self

    # ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "LoR2CConfig":
        if not isinstance(data, dict):
            raise ConfigError(f"a LoR2C config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown LoR2C config key(s): {', '.join(unknown)}")
        cfg = cls(**data)
        if cfg.spans is not None:
            cfg.spans = [list(s) if isinstance(s, (list, tuple)) else s for s in cfg.spans]
        cfg.inject_targets = list(cfg.inject_targets)
        cfg.injected = list(cfg.injected)
        if isinstance(cfg.alpha, int):
            cfg.alpha = float(cfg.alpha)
        if isinstance(cfg.inject_alpha, int):
            cfg.inject_alpha = float(cfg.inject_alpha)
        return cfg.validate()

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> "LoR2CConfig":
        p = Path(text_or_path)
        text = p.read_text() if (isinstance(text_or_path, Path) or not str(text_or_path).lstrip().startswith("{")) else str(text_or_path)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"invalid JSON in LoR2C config: {e}") from None
        return cls.from_dict(data)
