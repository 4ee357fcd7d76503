"""What a study starts from: the built-in configurations a user would set by hand (tried first, at the top
rung, so each trial is that built-in's baseline run), and a warm start from another study's front."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from autolor2c.errors import UserError
from autolor2c.train import TrainArgs, builtin_configs, count_adapter_params, read_config_file

from .. import record
from ..front import pareto_front
from ..space import SearchSpace
from .objective import SearchContext
from .optuna_internals import queued_params
from .storage import resolve_storage

# What a user would set by hand, tried first when the space can express them (the rest are baselines).
BUILTINS = ("lor2c", "sharelor2c", "imlor2c", "lora")


def builtin_params(space: SearchSpace, num_layers: int, name: str) -> dict[str, Any] | None:
    """The space parameters that make built-in configuration ``name`` exactly (its adapter and learning rate),
    or None when the space cannot express it."""
    spec, plan_train = read_config_file(name)
    if spec.method != space.method or spec.method != "lor2c":
        return None
    cfg = spec.lor2c
    spans = cfg.resolved_spans(num_layers)
    lr = plan_train.get("learning_rate", TrainArgs.learning_rate)
    lengths = {b - a + 1 for a, b in spans}
    if len(lengths) != 1 or any(spans[k + 1][0] != spans[k][1] + 1 for k in range(len(spans) - 1)):
        return None
    cand = {f: getattr(cfg, f) for f in ("rank", "alpha", "dropout", "share_a", "merge_count", "merge_criterion",
                                          "sfs_k", "max_merge_span", "inject_count", "inject_alpha")}
    cand.update(bypass_from=spans[0][0], bypass_to=spans[-1][1], span_length=lengths.pop(), learning_rate=lr)
    try:
        plan = space.fixed_plan(cand, num_layers, strict=False)
    except (UserError, ValueError):
        return None
    want, got = _structure_dict(cfg, num_layers), _structure_dict(plan.adapter, num_layers)
    if got != want or plan.train.get("learning_rate", TrainArgs.learning_rate) != lr or plan.clamped:
        return None
    used = set(space.sampled_keys(cand, num_layers))
    return {k: v for k, v in cand.items() if k in used}


def _structure_dict(cfg, num_layers: int) -> dict[str, Any]:
    """A LoR2C config as what it trains: fields that only matter for merges or injections are left out
    when there are none."""
    d = dict(cfg.to_dict(), spans=cfg.resolved_spans(num_layers))
    if not d["merge_count"]:
        for k in ("merge_criterion", "sfs_k", "max_merge_span"):
            d.pop(k)
    if not d["inject_count"] and not d["injected"]:
        for k in ("inject_rank", "inject_alpha", "inject_targets"):
            d.pop(k)
    return d


def startable_builtins(ctx: SearchContext) -> dict[str, dict[str, Any]]:
    """Built-in name -> space parameters, for the built-ins the space can express and the budget fits."""
    out = {}
    for name in BUILTINS:
        if name not in builtin_configs():
            continue
        params = builtin_params(ctx.space, ctx.shape.num_layers, name)
        if params is None or count_adapter_params(read_config_file(name)[0], ctx.shape)["peak"] > ctx.budget:
            continue
        out[name] = params
    return out


def enqueue_builtins(study: optuna.Study, ctx: SearchContext) -> list[str]:
    """Queue the built-ins the space can express and the budget fits as the study's first trials, at the top
    rung (each trial is then that built-in's baseline run). Only on a study with no trials yet."""
    if study.get_trials(deepcopy=False):
        return []
    queued = startable_builtins(ctx)
    for name, params in queued.items():
        study.enqueue_trial(params, user_attrs={record.BUILTIN: name, record.START_RUNG: ctx.fidelity.top})
    return list(queued)


def warm_start(study: optuna.Study, source: str, storage_url: str | None, space: SearchSpace, num_layers: int) -> int:
    """Enqueue the Pareto configurations of another finished study as this study's first trials.

    ``source`` is a study name in the same storage, or ``STORAGE_URL#STUDY`` for another storage.
    """
    if "#" in source:
        url, name = source.rsplit("#", 1)
    else:
        url, name = storage_url, source
    try:
        src = optuna.load_study(study_name=name, storage=resolve_storage(url, heartbeat=False))
    except KeyError:
        raise UserError("no such study", param="warm_start", value=source) from None
    front = pareto_front(src)
    if not front:
        raise UserError("that study has no finished feasible trial", param="warm_start", value=source)
    # a waiting (enqueued) trial holds its parameters in fixed_params until it runs
    queued = {tuple(sorted((queued_params(t) if t.state == TrialState.WAITING else t.params).items()))
              for t in study.get_trials(deepcopy=False)}
    n = 0
    for t in front:
        key = tuple(sorted(t.params.items()))
        if key in queued:
            continue
        try:
            space.fixed_plan(t.params, num_layers)
        except UserError:
            continue  # a configuration this space cannot express
        study.enqueue_trial(t.params, user_attrs={record.WARM_START_FROM: f"{name}#{t.number}"})
        queued.add(key)
        n += 1
    return n
