"""After a search: retrain front points on the full training set, and the hand-set built-in configurations
beside them, so a user sees whether the search beat setting it by hand.

A retrain reproduces its trial: the same training arguments (``SearchSettings.train_args``, the function
trials use) on more data, and the trial's *final* structure fixed from the start (its spans after merges,
its injected layers), so the retrained parameter count is the trial's, which is asserted. Everything is
scored on the selection split (which chooses the checkpoint) and on the dev set (which chooses nothing).
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import statistics
from pathlib import Path
from typing import Any

import optuna

from autolor2c.errors import UserError
from autolor2c.lor2c import LoR2CConfig
from autolor2c.tasks import resolve_data_dir
from autolor2c.train import TRAINER_VERSION, AdapterSpec, builtin_configs, count_adapter_params, model_label, \
    read_config_file, train

from .pareto import front_indices, pick_best, pick_knee
from .space import TrialPlan
from .study import SearchContext, pareto_front, plan_to_spec

BASELINES = ("lor2c", "sharelor2c", "imlor2c", "lora")  # what a user would set by hand


def trial_plan(t: optuna.trial.FrozenTrial) -> TrialPlan:
    if "plan" not in t.user_attrs:
        raise UserError(f"trial {t.number} has no recorded plan (not an autolor2c trial)")
    return TrialPlan.from_dict(t.user_attrs["plan"])


def fixed_structure_spec(t: optuna.trial.FrozenTrial) -> AdapterSpec:
    """The trial's adapter with its final structure from the start: no merge or injection left to decide."""
    plan = trial_plan(t)
    spec = plan_to_spec(plan)
    st = t.user_attrs.get("final_structure")
    if spec.method != "lor2c" or not st:
        return spec
    cfg: LoR2CConfig = copy.deepcopy(spec.lor2c)
    ranks = list(st.get("ranks", []))
    cfg.spans = [list(s) for s in st["spans"]]
    cfg.injected = sorted(st.get("injected", []))
    cfg.ranks = ranks if len(set(ranks)) > 1 else None
    if ranks and cfg.ranks is None:
        cfg.rank = ranks[0]
    if cfg.alphas is not None:  # per-bypass alphas only survive unmerged; keep one alpha then
        cfg.alphas = None
    cfg.merge_count = cfg.inject_count = 0
    cfg.validate(plan.num_layers)
    return AdapterSpec("lor2c", lor2c=cfg)


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def ms(key: str) -> tuple[float, float]:
        xs = [r[key] for r in runs if r.get(key) is not None]
        if not xs:
            return float("nan"), float("nan")
        return statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0

    sel, dev = ms("selection"), ms("dev")
    return {"seeds": len(runs), "selection_mean": sel[0], "selection_std": sel[1], "dev_mean": dev[0],
            "dev_std": dev[1], "params": runs[0]["params"], "wall_s": round(sum(r["wall_s"] for r in runs), 3),
            "cpu_s": round(sum(r["cpu_s"] for r in runs), 3), "n_train": runs[0]["n_train"], "runs": runs}


def _run(ctx: SearchContext, spec: AdapterSpec, plan_train: dict[str, Any], seed: int, out_dir: Path | None,
         progress: bool) -> dict[str, Any]:
    s = ctx.settings
    args = s.train_args(plan_train, stage="retrain", seed=seed, progress=progress)
    r = train(ctx.task, spec, args, model_name=s.model, data_dir=s.data_dir, out_dir=out_dir)
    return {"seed": seed, "selection": r.primary_score, "dev": r.dev_score, "dev_scores": r.dev_scores,
            "params": r.trainable_params, "wall_s": r.wall_time_s, "cpu_s": r.cpu_time_s,
            "n_train": r.n_train, "final_structure": r.final_structure}


def front_points(study: optuna.Study, pick: str, k: int) -> list[tuple[str, optuna.trial.FrozenTrial]]:
    """Up to ``k`` front trials to retrain: the pick first, then best/knee/smallest, without repeats."""
    front = pareto_front(study)
    if not front:
        return []
    pts = [(t.values[0], t.values[1]) for t in front]
    named = {"best": pick_best(pts), "knee": pick_knee(pts), "smallest": front_indices(pts)[0]}
    roles = [pick] + [r for r in ("best", "knee", "smallest") if r != pick]
    out, seen = [], set()
    for role in roles:
        i = named[role]
        if i not in seen:
            seen.add(i)
            out.append((role, front[i]))
    return out[:max(1, k)]


def retrain_front(study: optuna.Study, ctx: SearchContext, out: Path, picked: optuna.trial.FrozenTrial | None = None,
                  progress: bool = True) -> dict[str, Any] | None:
    """Retrain the pick with ``settings.seeds`` seeds and the other front points with one; keep the pick's
    seed-0 adapter in ``out/adapter``; write ``out/retrain.json``."""
    s = ctx.settings
    if s.seeds <= 0:
        return None
    points = front_points(study, s.pick, s.front_retrains)
    if picked is not None:
        points = [("picked", picked)] + [(r, t) for r, t in points if t.number != picked.number][:max(0, s.front_retrains - 1)]
    results = []
    for n, (role, t) in enumerate(points):
        spec = fixed_structure_spec(t)
        plan = trial_plan(t)
        seeds = s.seeds if n == 0 else 1
        runs = []
        for seed in range(seeds):
            folder = out / "retrain" / f"trial{t.number}-seed{seed}"
            r = _run(ctx, spec, plan.train, seed, folder, progress)
            if t.values is not None and r["params"] != int(t.values[1]):
                raise RuntimeError(f"retrain of trial {t.number} has {r['params']} params, the trial had "
                                   f"{int(t.values[1])}: the structure was not reproduced")
            runs.append(r)
            print(f"  retrain trial {t.number} ({role}) seed {seed}: selection {r['selection']:.4f}, "
                  f"dev {r['dev']:.4f} ({r['params']:,} params, {r['wall_s']:.0f}s)")
        results.append({"trial": t.number, "role": role, "trial_score": t.values[0], **_summary(runs)})
    if not results:
        return None
    pick_dir = out / "retrain" / f"trial{results[0]['trial']}-seed0" / "adapter"
    _replace_dir(pick_dir, out / "adapter")
    result = {"pick": results[0], "points": results,
              "wall_s": round(sum(r["wall_s"] for r in results), 3),
              "cpu_s": round(sum(r["cpu_s"] for r in results), 3)}
    study.set_user_attr("retrain", {"trial": results[0]["trial"], "seeds": results[0]["seeds"],
                                    "dev_mean": results[0]["dev_mean"], "dev_std": results[0]["dev_std"],
                                    "selection_mean": results[0]["selection_mean"], "params": results[0]["params"]})
    (out / "retrain.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def _baseline_key(ctx: SearchContext, name: str, spec: AdapterSpec, plan_train: dict[str, Any]) -> str:
    s = ctx.settings
    args = s.train_args(plan_train, stage="retrain", seed=0)
    data_dir = resolve_data_dir(s.data_dir)
    ident = {"task": ctx.task.name, "model": model_label(s.model), "data": str(data_dir.resolve()) if data_dir else "hub",
             "trainer": TRAINER_VERSION, "config": spec.to_dict(),
             "args": {k: v for k, v in vars(args).items() if k not in ("progress", "seed", "device")}}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{ctx.task.name}-{model_label(s.model)}-{name}-{digest}"


def retrain_baselines(ctx: SearchContext, cache_dir: Path, seeds: int = 1, progress: bool = True) -> list[dict[str, Any]]:
    """The built-in hand-set configurations that fit the budget, retrained as the front is (cached)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for name in BASELINES:
        if name not in builtin_configs():
            continue
        spec, plan_train = read_config_file(name)
        peak = count_adapter_params(spec, ctx.shape)["peak"]
        if peak > ctx.budget:
            continue
        f = cache_dir / f"{_baseline_key(ctx, name, spec, plan_train)}.json"
        runs = json.loads(f.read_text())["runs"] if f.is_file() else []
        for seed in range(len(runs), seeds):
            r = _run(ctx, spec, plan_train, seed, None, progress)
            runs.append(r)
            print(f"  baseline {name} seed {seed}: selection {r['selection']:.4f}, dev {r['dev']:.4f} "
                  f"({r['params']:,} params, {r['wall_s']:.0f}s)")
            tmp = f.with_suffix(".tmp")
            tmp.write_text(json.dumps({"config": name, "runs": runs}, indent=2, default=str))
            tmp.replace(f)
        out.append({"config": name, **_summary(runs[:seeds])})
    return out


def _replace_dir(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
