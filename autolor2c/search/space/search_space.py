"""Declarative search spaces (YAML): a file parsed and checked, and Optuna define-by-run suggestion.

A space file names a method (``lor2c`` or ``lora``) and maps parameter keys to fixed values or
distributions; see ``search_spaces/README.md`` for the format. Every check on the file happens in
:func:`load_space`, so :meth:`SearchSpace.suggest` never fails a trial because of a sampled value:
structural conflicts (more merges than spans allow, more injections than single-layer spans, an
all-off layer mask) are clamped by plan.py and recorded in :attr:`TrialPlan.clamped`.

The keys, their types and each key's value rules are in schema.py (the plan reads the same keys);
``when`` conditions and the order of suggestion are here, with the file they come from; what a sampled
configuration becomes lives apart, in plan.py.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.resources
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from optuna.trial import FixedTrial

from autolor2c.errors import UserError

from .plan import TrialPlan, build_plan
from .schema import (_LOR2C_FIELDS, _SPEC_KEYS, LOR2C_KEYS, LORA_DEFAULTS, LORA_KEYS, METHODS, RANGE_KEYS, TOP_KEYS,
                     TRAIN_KEYS, TYPES, Condition, ParamSpec, _check_lor2c, _check_lora, _check_train, _is_int,
                     _is_num, _is_scalar, _real)

__all__ = [
    "SearchSpace", "ParamSpec", "Condition", "load_space", "default_space_path", "list_builtin_spaces",
    "BUILTIN_DIR", "DEFAULT_SPACE", "TRAIN_KEYS",
]


def _builtin_dir() -> Path:
    """The shipped spaces: ``search_spaces/`` at the top of a checkout (an editable install runs from
    one), else the copy a wheel carries as the package ``autolor2c.builtin_spaces`` (pyproject maps it)."""
    checkout = Path(__file__).resolve().parents[3] / "search_spaces"
    if checkout.is_dir():
        return checkout
    try:
        shipped = importlib.resources.files("autolor2c.builtin_spaces")
    except ModuleNotFoundError:
        return checkout  # neither: list_builtin_spaces() is empty and load_space says so
    return Path(str(shipped))  # a regular package installed as files: a real directory


BUILTIN_DIR = _builtin_dir()
DEFAULT_SPACE = "lor2c_full"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CMP_RE = re.compile(r"^\s*(>=|<=|>|<)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")

# --------------------------------------------------------------------------------------------------
# The search space
# --------------------------------------------------------------------------------------------------
@dataclass
class SearchSpace:
    name: str
    method: str
    description: str
    params: dict[str, ParamSpec]
    source: str = "<space>"
    order: tuple[str, ...] = ()

    # ---- loading ---------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, source: str = "<space>", default_name: str = "space") -> "SearchSpace":
        def err(key: str, why: str) -> UserError:
            return UserError(f"{source}: {key}: {why}")

        if not isinstance(data, Mapping):
            got = "an empty file" if data is None else f"a {type(data).__name__}"
            raise UserError(f"{source}: expected a mapping with keys name, method, params; got {got}")
        for key in data:
            if key not in TOP_KEYS:
                raise err(str(key), f"unknown top-level key (expected one of {', '.join(TOP_KEYS)})")
        name = data.get("name", re.sub(r"[^A-Za-z0-9_.-]", "_", default_name).lstrip("_.-") or "space")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise err("name", f"{name!r} must be a word of letters, digits, '_', '-' or '.'")
        method = data.get("method", "lor2c")
        if method not in METHODS:
            raise err("method", f"{method!r} is not one of {', '.join(METHODS)}")
        description = data.get("description", "")
        if description is None:
            description = ""
        if not isinstance(description, str):
            raise err("description", "must be a string")
        if "params" not in data:
            raise err("params", "missing: the space needs a 'params' mapping")
        raw = data["params"]
        if not isinstance(raw, Mapping):
            raise err("params", f"must be a mapping of parameter keys, got {type(raw).__name__}")

        adapter_keys = LOR2C_KEYS if method == "lor2c" else LORA_KEYS
        specs: dict[str, ParamSpec] = {}
        raw_when: dict[str, Any] = {}
        for key, value in raw.items():
            where = f"params.{key}"
            if not isinstance(key, str):
                raise err(where, "parameter keys must be strings")
            if key == "method":
                raise err(where, "set the method with the top-level 'method' key")
            if key not in adapter_keys and key not in TRAIN_KEYS:
                raise err(where, f"unknown key for method {method} (adapter keys: {', '.join(adapter_keys)}; "
                                 f"training keys: {', '.join(TRAIN_KEYS)})")
            specs[key], raw_when[key] = cls._parse_spec(key, value, err)

        space = cls(name=name, method=method, description=description.strip(), params=specs, source=source)
        space._check_values(err)
        space._parse_conditions(raw_when, err)
        return space

    @staticmethod
    def _parse_spec(key: str, value: Any, err) -> tuple[ParamSpec, Any]:
        where = f"params.{key}"
        if not isinstance(value, Mapping):
            return ParamSpec(key, "fixed", value=_real(key, copy.deepcopy(value))), None
        if "type" not in value:
            raise err(where, f"a distribution needs a 'type' ({', '.join(TYPES)}); "
                             "use {type: fixed, value: ...} for a mapping value")
        kind = value["type"]
        if kind not in TYPES:
            raise err(where, f"unknown type {kind!r} (expected one of {', '.join(TYPES)})")
        allowed = _SPEC_KEYS[kind] | {"type", "when"}
        for k in value:
            if k not in allowed:
                raise err(where, f"unknown key {k!r} for type {kind} (allowed: {', '.join(sorted(allowed))})")
        when = value.get("when")
        if kind == "fixed":
            if "value" not in value:
                raise err(where, "type fixed needs a 'value'")
            return ParamSpec(key, kind, value=_real(key, copy.deepcopy(value["value"]))), when
        if kind == "layer_mask":
            if key != "layers":
                raise err(where, "type layer_mask is only for the 'layers' key")
            return ParamSpec(key, kind), when
        if kind == "layer":
            if key not in RANGE_KEYS:
                raise err(where, "type layer is only for the 'bypass_from' and 'bypass_to' keys")
            return ParamSpec(key, kind), when
        if kind == "categorical":
            choices = value.get("choices")
            if not isinstance(choices, list) or not choices:
                raise err(where, "choices must be a non-empty list")
            for c in choices:
                if not _is_scalar(c):
                    raise err(where, f"choice {c!r} must be a scalar (null, bool, number or string)")
            return ParamSpec(key, kind, choices=tuple(_real(key, c) for c in choices)), when

        # float / int
        for bound in ("low", "high"):
            if bound not in value:
                raise err(where, f"type {kind} needs '{bound}'")
        low, high, step, log = value["low"], value["high"], value.get("step"), value.get("log", False)
        if not isinstance(log, bool):
            raise err(where, f"log must be true or false, got {log!r}")
        if kind == "float":
            def num(name: str, v: Any) -> float:
                if isinstance(v, str):  # '1e-4' again
                    try:
                        v = float(v)
                    except ValueError:
                        pass
                if not _is_num(v) or not math.isfinite(v):
                    raise err(where, f"{name} must be a finite number, got {v!r}")
                return float(v)
            low, high = num("low", low), num("high", high)
            step = None if step is None else num("step", step)
        else:
            for name, v in (("low", low), ("high", high)):
                if not _is_int(v):
                    raise err(where, f"{name} must be an integer, got {v!r}")
            if step is not None and not _is_int(step):
                raise err(where, f"step must be an integer, got {step!r}")
        if low > high:
            raise err(where, f"low ({low!r}) is greater than high ({high!r})")
        if log and low <= 0:
            raise err(where, f"log needs low > 0, got {low!r}")
        if step is not None:
            if step <= 0:
                raise err(where, f"step must be > 0, got {step!r}")
            if log and (kind == "float" or step != 1):
                raise err(where, "log cannot be combined with step")
            span = (high - low) / step
            if abs(span - round(span)) > 1e-9:
                raise err(where, f"high - low must be a multiple of step ({step!r})")
        return ParamSpec(key, kind, low=low, high=high, log=log, step=step), when

    def _check_values(self, err) -> None:
        specs = self.params
        fixed_spans = None
        if self.method == "lor2c":
            if "spans" in specs and ("layers" in specs or "span_length" in specs or "bypass_from" in specs):
                raise err("params.spans", "give either spans or layers/bypass_from/span_length, not both")
            if "layers" in specs and ("bypass_from" in specs or "bypass_to" in specs):
                raise err("params.bypass_from", "give either layers or bypass_from/bypass_to, not both")
            if "bypass_to" in specs and "bypass_from" not in specs:
                raise err("params.bypass_to", "needs bypass_from (the other end of the range)")
            spans_spec = specs.get("spans")
            if spans_spec is not None and spans_spec.type != "fixed":
                raise err("params.spans", "spans can only be a fixed list of [first, last] pairs")
            fixed_spans = spans_spec.value if spans_spec is not None else None
        for key, spec in specs.items():
            where = f"params.{key}"
            if key == "layers" and spec.type not in ("layer_mask", "fixed"):
                raise err(where, "must be {type: layer_mask} or a fixed list of layer indices")
            if key in RANGE_KEYS and spec.type not in ("layer", "fixed"):
                raise err(where, "must be {type: layer} or a fixed layer index")
            for v in spec.candidates():
                if key in TRAIN_KEYS:
                    why = _check_train(key, v)
                elif self.method == "lora":
                    why = _check_lora(key, v)
                else:
                    why = _check_lor2c(key, v, fixed_spans)
                if why:
                    raise err(where, f"{v!r}: {why}")

    def _parse_conditions(self, raw_when: dict[str, Any], err) -> None:
        conds: dict[str, tuple[Condition, ...]] = {}
        conditional = {k for k, w in raw_when.items() if w is not None}
        for key, when in raw_when.items():
            where = f"params.{key}.when"
            if when is None:
                conds[key] = ()
                continue
            if not isinstance(when, Mapping) or not when:
                raise err(where, "must be a non-empty mapping {param: value}")
            out = []
            for target, operand in when.items():
                if target not in self.params:
                    raise err(where, f"unknown param {target!r} (it must be a key under params)")
                if target == key:
                    raise err(where, "a param cannot depend on itself")
                tspec = self.params[target]
                if tspec.type in ("layer_mask", "layer") or (tspec.type == "fixed" and not _is_scalar(tspec.value)):
                    raise err(where, f"{target!r} is not a scalar param and cannot be a condition")
                cond = self._parse_condition(target, operand, tspec, err, where)
                if not self._may_hold(cond, tspec, target in conditional):
                    raise err(where, f"{cond.describe()} can never hold for {target}")
                out.append(cond)
            conds[key] = tuple(out)
        self.params = {k: dataclasses.replace(s, when=conds.get(k, ())) for k, s in self.params.items()}
        self.order = self._topological_order(err)

    @staticmethod
    def _parse_condition(target: str, operand: Any, tspec: ParamSpec, err, where: str) -> Condition:
        if isinstance(operand, str) and operand.strip()[:1] in ("<", ">"):
            m = _CMP_RE.match(operand)
            if not m:
                raise err(where, f"{target}: bad comparison {operand!r} (use '>0', '>=2', '<4', ...)")
            numeric = tspec.type in ("int", "float") or all(
                _is_num(c) for c in (tspec.choices if tspec.type == "categorical" else [tspec.value]))
            if not numeric:
                raise err(where, f"{target}: {operand!r} compares numbers but {target} is not numeric")
            num = float(m.group(2))
            return Condition(target, m.group(1), int(num) if num.is_integer() else num)
        if isinstance(operand, list):
            if not operand or not all(_is_scalar(o) for o in operand):
                raise err(where, f"{target}: a list condition must be a non-empty list of scalars")
            return Condition(target, "in", tuple(operand))
        if not _is_scalar(operand):
            raise err(where, f"{target}: condition {operand!r} must be a scalar, a list or a comparison")
        return Condition(target, "==", operand)

    def _default(self, key: str) -> Any:
        """The value a key has when it is absent or its condition does not hold."""
        if key in TRAIN_KEYS or key in ("layers",) + RANGE_KEYS:
            return None
        if key == "span_length":
            return 1
        if self.method == "lora":
            return copy.deepcopy(LORA_DEFAULTS[key])
        f = _LOR2C_FIELDS[key]
        return f.default_factory() if f.default is dataclasses.MISSING else f.default

    def _may_hold(self, cond: Condition, tspec: ParamSpec, target_conditional: bool) -> bool:
        # Reject conditions that can never hold (a typo such as 'topK'), counting the target's default
        # when the target is itself conditional.
        if tspec.type == "categorical":
            values = list(tspec.choices)
        elif tspec.type == "fixed":
            values = [tspec.value]
        else:  # an int/float range: test the ends (comparisons) or range membership (equality)
            lo, hi = tspec.low, tspec.high
            if cond.op in (">", ">=", "<", "<="):
                values = [lo, hi]
            else:
                ops = [cond.operand] if cond.op == "==" else list(cond.operand)
                values = [o for o in ops if _is_num(o) and lo <= o <= hi
                          and (tspec.type == "float" or float(o).is_integer())]
        if target_conditional:
            values.append(self._default(cond.target))
        return any(cond.holds(v) for v in values)

    def _topological_order(self, err) -> tuple[str, ...]:
        # YAML order, except that a condition's target is always suggested before the param it guards.
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(key: str, path: list[str]) -> None:
            if state.get(key) == 2:
                return
            if state.get(key) == 1:
                cycle = " -> ".join(path[path.index(key):] + [key])
                raise err(f"params.{key}.when", f"circular conditions: {cycle}")
            state[key] = 1
            for c in self.params[key].when:
                visit(c.target, path + [key])
            state[key] = 2
            order.append(key)

        for key in self.params:
            visit(key, [])
        return tuple(order)

    # ---- suggesting ------------------------------------------------------------------------------
    def suggest(self, trial: Any, num_layers: int) -> TrialPlan:
        """Suggest one configuration for a model with ``num_layers`` layers (define-by-run)."""
        if not _is_int(num_layers) or num_layers < 1:
            raise ValueError(f"num_layers must be an integer >= 1, got {num_layers!r}")
        values: dict[str, Any] = {}
        for key in self.order:
            spec = self.params[key]
            if all(c.holds(values[c.target] if c.target in values else self._default(c.target)) for c in spec.when):
                values[key] = spec.sample(trial, num_layers)
        return build_plan(self, values, num_layers)

    def fixed_plan(self, params: Mapping[str, Any], num_layers: int, *, strict: bool = True) -> TrialPlan:
        """Rebuild the plan of a finished trial from its ``trial.params``.

        With ``strict`` (the default), params the space does not use are an error: they mean the
        trial came from another space or another layer count.
        """
        if not isinstance(params, Mapping):
            raise UserError(f"{self.source}: trial params must be a mapping, got {type(params).__name__}")
        ft = FixedTrial(dict(params))
        try:
            plan = self.suggest(ft, num_layers)
        except UserError:
            raise
        except ValueError as e:
            raise UserError(f"{self.source}: these trial params do not fit space {self.name!r} "
                            f"for {num_layers} layers: {e}") from None
        extra = sorted(set(params) - set(ft.params))
        if strict and extra:
            raise UserError(f"{self.source}: trial params not used by space {self.name!r} for {num_layers} "
                            f"layers: {', '.join(map(str, extra))}")
        return plan

    def sampled_keys(self, params: Mapping[str, Any], num_layers: int) -> list[str]:
        """The keys of ``params`` that this space samples for them (the rest are fixed or unused)."""
        ft = FixedTrial(dict(params))
        self.suggest(ft, num_layers)
        return list(ft.params)

# --------------------------------------------------------------------------------------------------
# Files and builtins
# --------------------------------------------------------------------------------------------------
def list_builtin_spaces() -> list[str]:
    """Names of the shipped spaces (the repo's ``search_spaces/`` folder), sorted."""
    if not BUILTIN_DIR.is_dir():
        return []
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def default_space_path() -> Path:
    return BUILTIN_DIR / f"{DEFAULT_SPACE}.yaml"


def _yaml_error_line(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())


def load_space(path_or_name: str | Path) -> SearchSpace:
    """Load a space from a YAML file, or a builtin by name (``lor2c_full``, ``lor2c_only``, ``lora``)."""
    text = str(path_or_name)
    path = Path(path_or_name).expanduser()
    if not path.is_file() and isinstance(path_or_name, str) and text in list_builtin_spaces():
        path = BUILTIN_DIR / f"{text}.yaml"
    if not path.exists():
        hint = ""
        if "/" not in text and "\\" not in text and not text.endswith((".yaml", ".yml")):
            hint = f" (builtin spaces: {', '.join(list_builtin_spaces())})"
        raise UserError(f"{text}: search space file not found{hint}")
    if not path.is_file():
        raise UserError(f"{text}: is not a file")
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read the search space: {e}") from None
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML: {_yaml_error_line(e)}") from None
    return SearchSpace.from_dict(data, source=str(path), default_name=path.stem)
