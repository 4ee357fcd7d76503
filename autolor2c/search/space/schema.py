"""The vocabulary of a search-space file, shared by the space (search_space.py) and the plan (plan.py): the
keys a space may set and their types, each key's value rules, conditions and parameter specs.

It imports neither of them: the space parses a file with these rules and builds plans; the plan reads the
same keys (``TRAIN_KEYS``, ``LORA_KEYS``, ``RANGE_KEYS``, ...) from here.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from autolor2c.lor2c.config import ConfigError, LoR2CConfig

METHODS = ("lor2c", "lora")
TOP_KEYS = ("name", "method", "description", "params")
TYPES = ("float", "int", "categorical", "layer_mask", "layer", "fixed")
TRAIN_KEYS = ("learning_rate", "weight_decay", "warmup_ratio", "batch_size", "epochs", "max_length")

_LOR2C_FIELDS = {f.name: f for f in dataclasses.fields(LoR2CConfig)}
# 'method' is the top-level key; 'layers' + 'span_length' build 'spans' from a layer mask.
LOR2C_KEYS = tuple(k for k in _LOR2C_FIELDS if k != "method") + ("layers", "bypass_from", "bypass_to", "span_length")
RANGE_KEYS = ("bypass_from", "bypass_to")  # {type: layer}: the two ends of the bypassed range, in either order
LORA_KEYS = ("rank", "alpha", "dropout", "target_modules", "layers")
# train.LoRASpec's defaults (a test keeps them equal; this module stays free of torch for the CLI's checks)
LORA_DEFAULTS: dict[str, Any] = {"rank": 4, "alpha": 8.0, "dropout": 0.1,
                                 "target_modules": ["query", "value"], "layers": None}
_FLOAT_FIELDS = ("alpha", "dropout", "inject_alpha")  # stored as float so JSON round trips compare equal
# Keys whose values are real numbers: numeric strings are accepted for them, because PyYAML reads
# '1e-4' (no dot) as a string.
_REAL_KEYS = _FLOAT_FIELDS + ("learning_rate", "weight_decay", "warmup_ratio", "epochs")
_SPEC_KEYS = {
    "float": {"low", "high", "log", "step"},
    "int": {"low", "high", "log", "step"},
    "categorical": {"choices"},
    "layer_mask": set(),
    "layer": set(),
    "fixed": {"value"},
}


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _real(key: str, v: Any) -> Any:
    if key in _REAL_KEYS and isinstance(v, str):
        try:
            f = float(v)
        except ValueError:
            return v
        return f if math.isfinite(f) else v
    return v


# --------------------------------------------------------------------------------------------------
# Conditions and parameter specs
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Condition:
    """``when: {target: operand}``: op is ``==``, ``in`` (a list operand), or a numeric comparison."""

    target: str
    op: str
    operand: Any

    def holds(self, value: Any) -> bool:
        if self.op == "==":
            return value == self.operand
        if self.op == "in":
            return value in self.operand
        if not _is_num(value):
            return False
        return {">": value > self.operand, ">=": value >= self.operand,
                "<": value < self.operand, "<=": value <= self.operand}[self.op]

    def describe(self) -> str:
        return f"{self.target} {self.op} {self.operand!r}"


@dataclass(frozen=True)
class ParamSpec:
    key: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple | None = None
    value: Any = None
    when: tuple[Condition, ...] = ()

    def candidates(self) -> list[Any]:
        """Values checked against the key's rules at load time (bounds stand for the whole range)."""
        if self.type in ("float", "int"):
            return [self.low, self.high]
        if self.type == "categorical":
            return list(self.choices)
        if self.type == "fixed":
            return [self.value]
        return []

    def sample(self, trial: Any, num_layers: int) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)
        if self.type == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        if self.type == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.type == "layer_mask":
            return [bool(trial.suggest_categorical(f"bypass_{k}", [True, False])) for k in range(num_layers)]
        if self.type == "layer":  # a layer index of this model, so one space fits models of any depth
            return trial.suggest_int(self.key, 0, num_layers - 1)
        return copy.deepcopy(self.value)


# --------------------------------------------------------------------------------------------------
# Per-key value rules (checked on every candidate at load time)
# --------------------------------------------------------------------------------------------------
def _check_train(key: str, v: Any) -> str | None:
    if key in ("batch_size", "max_length"):
        return None if _is_int(v) and v >= 1 else "must be an integer >= 1"
    if not _is_num(v) or not math.isfinite(v):
        return "must be a number"
    if key == "learning_rate" and v <= 0:
        return "must be > 0"
    if key == "weight_decay" and v < 0:
        return "must be >= 0"
    if key == "warmup_ratio" and not 0 <= v <= 1:
        return "must be in [0, 1]"
    if key == "epochs" and v <= 0:
        return "must be > 0"
    return None


def _check_layers_value(v: Any) -> str | None:
    # A fixed 'layers' value: layer indices (negative ones count from the top).
    if not isinstance(v, list) or not v or not all(_is_int(k) for k in v):
        return "must be {type: layer_mask} or a non-empty list of layer indices"
    if len(set(v)) != len(v):
        return "has repeated layer indices"
    return None


def _check_lora(key: str, v: Any) -> str | None:
    if key == "rank":
        return None if _is_int(v) and v >= 1 else "must be an integer >= 1"
    if key == "alpha":
        return None if _is_num(v) and v > 0 else "must be > 0"
    if key == "dropout":
        return None if _is_num(v) and 0 <= v < 1 else "must be in [0, 1)"
    if key == "target_modules":
        ok = isinstance(v, list) and v and all(isinstance(t, str) and t for t in v)
        return None if ok else "must be a non-empty list of module names"
    return _check_layers_value(v)


def _check_annotation(key: str, v: Any) -> str | None:
    # Types from the LoR2CConfig annotations (strings under `from __future__ import annotations`),
    # so fields added later are type-checked too; validate() then checks the ranges.
    ann = str(_LOR2C_FIELDS[key].type).replace(" ", "")
    if v is None:
        return None if "None" in ann else "must not be null"
    base = ann.split("|")[0]
    if base.startswith("list"):
        return None if isinstance(v, list) else "must be a list"
    if base == "bool":
        return None if isinstance(v, bool) else "must be true or false"
    if base == "int":
        return None if _is_int(v) else "must be an integer"
    if base == "float":
        return None if _is_num(v) else "must be a number"
    if base == "str":
        return None if isinstance(v, str) and v else "must be a non-empty string"
    return None


def _check_lor2c(key: str, v: Any, fixed_spans: Any) -> str | None:
    if key == "layers":
        return _check_layers_value(v)
    if key == "span_length":
        return None if _is_int(v) and v >= 1 else "must be an integer >= 1"
    if key in RANGE_KEYS:
        return None if _is_int(v) else "must be {type: layer} or a layer index (negative counts from the top)"
    why = _check_annotation(key, v)
    if why:
        return why
    kwargs = {key: float(v) if key in _FLOAT_FIELDS and _is_int(v) else v}
    if key in ("ranks", "alphas") and fixed_spans is not None:
        kwargs["spans"] = fixed_spans
    try:
        LoR2CConfig(**kwargs).validate()
    except ConfigError as e:
        # Drop validate()'s "LoR2CConfig.key=value: " prefix: the caller already names key and value.
        msg = str(e)
        prefix = f"LoR2CConfig.{key}="
        return msg.split(": ", 1)[1] if msg.startswith(prefix) and ": " in msg else msg
    except TypeError as e:  # e.g. a list where validate() expects numbers
        return f"invalid value ({e})"
    return None
