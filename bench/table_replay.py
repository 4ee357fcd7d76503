"""Replay the product's own search against the tabular benchmark (issue 12): P3 (samplers) and P4
(multi-fidelity vs full fidelity), >= 20 seeds per arm, in minutes instead of days.

    python bench/table_replay.py                        # every arm, 20 seeds, 40 configurations each
    python bench/table_replay.py --seeds 30 --arms parego+asha,random-full
    python bench/table_replay.py --summarise            # recompute the summary from the committed curves

What runs is ``autolor2c.search.study.run_search`` itself (the shipped sampler, ASHA promotions, budget
check, trial counting, cost accounting) on in-memory storage; only the trainer is replaced by
:class:`TableTrainer`, which answers a configuration's rung run from the table built by
bench/table_build.py: the recorded run when the configuration is in the table (one of its training seeds,
drawn per replay seed), otherwise a surrogate (a random forest per rung over the configuration's
structure, YAHPO-style) plus the table's own seed-to-seed noise. The surrogate is checked on held-out
configurations (5-fold, Spearman) and that number is part of the results.

Each arm's every trial is kept (bench/results/replay_<task>.json: per-trial curves), and the summary is
computed from those curves only (``summarise``), so anyone can recompute it (a test does).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine_info, md_table  # noqa: E402

from autolor2c.search.retrain import trial_plan  # noqa: E402,F401 (tests call R.trial_plan)
from autolor2c.search.study import plan_to_spec  # noqa: E402
from autolor2c.train import TrainResult  # noqa: E402

BOOT = 2000
ARMS = {  # name -> (sampler, multi-fidelity)
    "parego+asha": ("parego", True),    # the shipped default
    "parego-full": ("parego", False),
    "random+asha": ("random", True),
    "random-full": ("random", False),   # plain random search: P3's reference
    "tpe+asha": ("tpe", True),
    "gp+asha": ("gp", True),            # not in the default arms: over 8 min per replay on this CPU
    "moasha": ("syne-tune MOASHA", True),  # outside anchor: Syne Tune's multi-objective ASHA (random proposals)
}


# --------------------------------------------------------------------------------------------------
# The table and its configurations
# --------------------------------------------------------------------------------------------------
def spec_key(spec) -> str:
    """A configuration's identity: its adapter spec, canonical JSON (floats as Python prints them)."""
    return json.dumps(spec.to_dict(), sort_keys=True)


def spec_features(spec, shape) -> list[float]:
    """What the surrogate sees: the structure the adapter ends training with (after the merges and injections
    that always happen) and its scale, as numbers. The final structure matters most: on SST-2 a few long
    bypasses score like the head alone. (The raw search parameters as features ranked held-out configurations
    far worse in a one-off check; the held-out Spearman of these is in results/replay_<task>.md.)"""
    from autolor2c.lor2c.structure import guaranteed_events
    from autolor2c.train import count_adapter_params

    c = spec.lor2c
    spans = c.spans or [[i, i] for i in range(shape.num_layers)]
    merges, injections = guaranteed_events(c, shape.num_layers)
    n_final = max(1, len(spans) - merges - injections)
    covered = sum(b - a + 1 for a, b in spans)
    peak = count_adapter_params(spec, shape)["peak"]
    return [math.log2(c.rank), math.log(c.alpha), math.log(c.alpha / c.rank), float(c.share_a), float(len(spans)),
            float(min(s[0] for s in spans)), float(merges), float(injections), float(n_final), covered / n_final,
            math.log(max(peak, 1))]


@dataclasses.dataclass
class Table:
    """Rung runs by configuration: ``runs[key][rung]`` is a list of recorded runs (one per training seed)."""
    runs: dict[str, dict[int, list[dict[str, Any]]]]
    fractions: tuple[float, ...]
    features: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    # Seconds charged for one run at each rung; None: each run's own recorded wall time. The built table uses
    # the median over all its runs at the rung: the table was built on a shared machine where a run's wall
    # time swings 3-5x with other load, while what a run costs depends on its rung (steps), hardly on the
    # configuration. It includes the dev scoring a search trial does not pay (the same for both rungs), which
    # makes the low rung relatively dearer: against multi-fidelity in P4.
    rung_cost: dict[int, float] | None = None

    @classmethod
    def from_jsonl(cls, rows: Sequence[dict[str, Any]], shape) -> "Table":
        from autolor2c.search.space import TrialPlan
        from autolor2c.search.study import plan_to_spec

        header = next(r for r in rows if r.get("kind") == "header")
        keys, feats = {}, {}
        for r in rows:
            if r.get("kind") == "config" and r["feasible"]:
                spec = plan_to_spec(TrialPlan.from_dict(r["plan"]))
                keys[r["config"]] = spec_key(spec)
                feats[keys[r["config"]]] = spec_features(spec, shape)
        runs: dict[str, dict[int, list[dict[str, Any]]]] = {}
        for r in rows:
            if r.get("kind") == "run" and r["config"] in keys:
                runs.setdefault(keys[r["config"]], {}).setdefault(r["rung"], []).append(r)
        complete = {k: v for k, v in runs.items() if len(v) == len(header["fractions"])}
        cost = {rung: statistics.median(r["wall_s"] for v in complete.values() for r in v[rung])
                for rung in range(len(header["fractions"]))} if complete else None
        return cls(complete, tuple(header["fractions"]), {k: feats[k] for k in complete}, cost)

    @classmethod
    def from_study(cls, study, shape) -> "Table":
        """Every rung run a real search recorded (trial attributes), as a table."""
        from autolor2c.search.fidelity import RUNGS_ATTR
        from autolor2c.search.retrain import trial_plan
        from autolor2c.search.study import plan_to_spec

        runs: dict[str, dict[int, list[dict[str, Any]]]] = {}
        feats = {}
        fractions = tuple(study.user_attrs["identity"]["fidelity"]["fractions"])
        for t in study.trials:
            if not t.user_attrs.get("trained"):
                continue
            spec = plan_to_spec(trial_plan(t))
            key = spec_key(spec)
            feats[key] = spec_features(spec, shape)
            for r in t.user_attrs.get(RUNGS_ATTR, []):
                if "from_trial" in r:  # copied from the trial that measured it
                    continue
                runs.setdefault(key, {}).setdefault(r["rung"], []).append(
                    {"rung": r["rung"], "seed": 0, "selection": r["score"], "params": r["params"], "steps": r["steps"],
                     "n_train": r["n_train"], "wall_s": r["wall_s"], "cpu_s": r["cpu_s"],
                     "final_structure": t.user_attrs.get("final_structure")})
        return cls(runs, fractions, feats)


class Surrogate:
    """A random forest per rung: configuration features -> mean selection score and wall seconds."""

    def __init__(self, table: Table, seed: int = 0):
        from sklearn.ensemble import RandomForestRegressor

        self.models, self.noise = {}, {}
        keys = sorted(table.runs)
        for rung in range(len(table.fractions)):
            X = [table.features[k] for k in keys]
            runs = [table.runs[k][rung] for k in keys]
            y = [statistics.fmean(r["selection"] for r in rs) for rs in runs]
            c = [statistics.fmean(r["wall_s"] for r in rs) for rs in runs]
            self.models[rung] = (RandomForestRegressor(200, min_samples_leaf=2, random_state=seed).fit(X, y),
                                 RandomForestRegressor(200, min_samples_leaf=2, random_state=seed).fit(X, c))
            # pooled seed-to-seed std of the selection score at this rung
            devs = [(r["selection"] - m) ** 2 for rs, m in zip(runs, y) for r in rs]
            dof = sum(len(rs) - 1 for rs in runs)
            self.noise[rung] = math.sqrt(sum(devs) / dof) if dof > 0 else 0.0

    def predict(self, features: list[float], rung: int) -> tuple[float, float]:
        score_model, cost_model = self.models[rung]
        return float(score_model.predict([features])[0]), float(cost_model.predict([features])[0])


def surrogate_check(table: Table, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Held-out check: Spearman correlation of predicted and measured mean rung scores, by k-fold over
    configurations (each configuration predicted by a forest that never saw it)."""
    from scipy.stats import spearmanr

    keys = sorted(table.runs)
    random.Random(seed).shuffle(keys)
    out = {}
    for rung in range(len(table.fractions)):
        pred, true = [], []
        for f in range(folds):
            held = set(keys[f::folds])
            sub = Table({k: v for k, v in table.runs.items() if k not in held}, table.fractions,
                        {k: v for k, v in table.features.items() if k not in held})
            if len(sub.runs) < 4:
                continue
            s = Surrogate(sub, seed)
            for k in held:
                pred.append(s.predict(table.features[k], rung)[0])
                true.append(statistics.fmean(r["selection"] for r in table.runs[k][rung]))
        rho = spearmanr(pred, true).statistic if len(pred) > 2 else float("nan")
        out[f"rung{rung}"] = {"spearman": round(float(rho), 3), "n": len(pred)}
    return out


def real_check(table: Table, surrogate: Surrogate, study, shape) -> dict[str, Any]:
    """Out of sample: the surrogate (fitted on the whole table) against every rung run a real search
    trained. Spearman of predicted vs real score per rung, and the real score's mean excess over the
    prediction (a real run is one seed; the forest predicts a two-seed mean)."""
    from scipy.stats import spearmanr

    real = Table.from_study(study, shape)
    out = {}
    for rung in range(len(table.fractions)):
        pairs = [(surrogate.predict(real.features[k], rung)[0], r["selection"])
                 for k, v in real.runs.items() for r in v.get(rung, [])]
        if len(pairs) < 3:
            continue
        pred, true = zip(*pairs)
        out[f"rung{rung}"] = {"n": len(pairs), "spearman": round(float(spearmanr(pred, true).statistic), 3),
                              "mean_excess": round(statistics.fmean(t - p for p, t in pairs), 4),
                              "in_table": sum(len(v[rung]) for k, v in real.runs.items() if rung in v and k in table.runs)}
    return out


class TableTrainer:
    """Stands in for ``autolor2c.train.train`` inside a real search: answers a rung run from the table
    with a ``TrainResult`` holding the recorded (or predicted) score, params and cost, and no model."""

    def __init__(self, table: Table, shape, n_full: int, replay_seed: int, surrogate: Surrogate | None = None):
        self.table, self.shape, self.n_full, self.seed, self.surrogate = table, shape, n_full, replay_seed, surrogate
        self.lookups = {"table": 0, "surrogate": 0}

    def _rng(self, key: str, rung: int) -> random.Random:
        return random.Random(int(hashlib.sha256(f"{self.seed}|{key}|{rung}".encode()).hexdigest()[:12], 16))

    def __call__(self, task, spec, args, model_name=None, data_dir=None, out_dir=None) -> dict[str, Any]:
        key = spec_key(spec)
        fraction = args.max_train_samples / self.n_full  # the rung's share of the full trial's rows
        rung = min(range(len(self.table.fractions)), key=lambda i: abs(self.table.fractions[i] - fraction))
        recorded = self.table.runs.get(key, {}).get(rung)
        if recorded:
            # the same training seed for every rung of one configuration in one replay
            pick = sorted(recorded, key=lambda r: r["seed"])[self._rng(key, -1).randrange(len(recorded))]
            self.lookups["table"] += 1
            score, wall, cpu = pick["selection"], pick["wall_s"], pick["cpu_s"]
            if self.table.rung_cost:
                wall = cpu = self.table.rung_cost[rung]
            params, steps, n_train = pick["params"], pick["steps"], pick["n_train"]
            structure = pick.get("final_structure")
        else:
            if self.surrogate is None:
                raise KeyError(f"configuration not in the table and no surrogate: {key}")
            from autolor2c.train import count_adapter_params

            mean, wall = self.surrogate.predict(spec_features(spec, self.shape), rung)
            wall = self.table.rung_cost[rung] if self.table.rung_cost else wall
            score = mean + self._rng(key, rung).gauss(0.0, self.surrogate.noise[rung])
            cpu, steps, n_train = wall, 0, args.max_train_samples
            params = count_adapter_params(spec, self.shape)["final"]
            structure = None
            self.lookups["surrogate"] += 1
        structure = structure or {"method": spec.method, "spans": spec.lor2c.spans, "ranks": [], "injected": []}
        return TrainResult(task=task.name, method=spec.method, model="table", config=spec.to_dict(),
                           final_structure=structure, train_args=dataclasses.asdict(args),
                           scores={task.primary_metric: float(score)}, eval_split="selection",
                           primary_metric=task.primary_metric, primary_score=float(score), trainable_params=int(params),
                           analytic_params=int(params), planned_params={}, head_params=0, backbone_params=0,
                           steps=steps, epochs=0.0, n_train=n_train, n_eval=0, n_dev=0, wall_time_s=float(wall),
                           cpu_time_s=float(cpu))


# --------------------------------------------------------------------------------------------------
# One replayed search, and its per-trial curve
# --------------------------------------------------------------------------------------------------
def replay_search(ctx, table: Table, surrogate: Surrogate | None, sampler: str, multi_fidelity: bool, seed: int,
                  configurations: int) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Run the product's search on in-memory storage with the table as its trainer; the trials in order."""
    from autolor2c.search.fidelity import Fidelity
    from autolor2c.search.study import Objective, run_search

    fidelity = Fidelity(table.fractions, ctx.settings.fidelity.eta) if multi_fidelity else Fidelity.off()
    settings = dataclasses.replace(ctx.settings, sampler=sampler, seed=seed, fidelity=fidelity, trials=configurations,
                                   storage="memory", study_name=f"replay-{sampler}-{multi_fidelity}-{seed}",
                                   progress=False, seeds=0)
    rctx = dataclasses.replace(ctx, settings=settings)
    trainer = TableTrainer(table, ctx.shape, ctx.n_train_full, replay_seed=seed, surrogate=surrogate)
    with contextlib.redirect_stdout(io.StringIO()):
        study, _, _, _ = run_search(settings, objective_factory=lambda c: Objective(c, trainer=trainer), ctx=rctx)
    return study_curve(study), trainer.lookups


def syne_tune_space(space, num_layers: int) -> dict[str, Any]:
    """The search space in Syne Tune's terms (conditional keys are always drawn and ignored where unused)."""
    from syne_tune import config_space as cs

    out = {}
    for key, p in space.params.items():
        if p.type == "int":
            out[key] = (cs.lograndint if p.log else cs.randint)(p.low, p.high)
        elif p.type == "float":
            out[key] = (cs.loguniform if p.log else cs.uniform)(p.low, p.high)
        elif p.type == "categorical":
            out[key] = cs.choice(list(p.choices))
        elif p.type == "layer":
            out[key] = cs.randint(0, num_layers - 1)
        elif p.type != "fixed":
            raise ValueError(f"no Syne Tune equivalent for {key} ({p.type})")
    return out


def replay_moasha(ctx, table: Table, surrogate: Surrogate | None, seed: int, configurations: int) -> tuple[list, dict]:
    """Syne Tune's MOASHA (stopping-type, non-dominated sorting at each rung) on the same table, trainer and
    budget rule (over-budget draws are free and not counted); one worker, as the product's default."""
    import numpy as np
    from syne_tune.backend.trial_status import Trial
    from syne_tune.optimizer.scheduler import SchedulerDecision
    from syne_tune.optimizer.schedulers.multiobjective.moasha import MOASHA

    from autolor2c.train import count_adapter_params

    fr = table.fractions
    levels = [round(f / fr[0]) for f in fr]  # rungs as "epochs": 1, 3 for fractions 1/3, 1
    np.random.seed(seed)  # MOASHA's proposals use numpy's global generator
    sched = MOASHA(syne_tune_space(ctx.space, ctx.shape.num_layers), metrics=["neg_score", "params"], do_minimize=True,
                   time_attr="epoch", max_t=levels[-1], grace_period=levels[0], reduction_factor=ctx.settings.fidelity.eta,
                   random_seed=seed)
    trainer = TableTrainer(table, ctx.shape, ctx.n_train_full, replay_seed=seed, surrogate=surrogate)
    curve, trained, n = [], 0, 0
    while trained < configurations:
        config = sched.suggest().config
        plan = ctx.space.fixed_plan(config, ctx.shape.num_layers, strict=False)
        spec = plan_to_spec(plan)
        peak = count_adapter_params(spec, ctx.shape)["peak"]
        if peak > ctx.budget:
            curve.append({"n": n, "state": "PRUNED", "feasible": False, "promoted_from": None, "params_in": config,
                          "rung": None, "score": None, "params": peak, "value": None, "cost_s": 0.0})
            n += 1
            continue
        trial = Trial(trial_id=trained, config=config, creation_time=None)
        sched.on_trial_add(trial)
        trained += 1
        first = n
        for rung, frac in enumerate(fr):
            args = ctx.settings.train_args(plan.train, stage="trial", n_full=ctx.n_train_full, fraction=frac)
            r = trainer(ctx.task, spec, args)
            top = rung == len(fr) - 1
            curve.append({"n": n, "state": "COMPLETE" if top else "PRUNED", "feasible": True,
                          "promoted_from": None if rung == 0 else first, "params_in": config, "rung": rung,
                          "score": r.primary_score, "params": r.trainable_params,
                          "value": r.primary_score if top else None, "cost_s": r.wall_time_s})
            n += 1
            decision = sched.on_trial_result(trial, {"epoch": levels[rung], "neg_score": -r.primary_score,
                                                     "params": r.trainable_params})
            if top or decision != SchedulerDecision.CONTINUE:
                break
    return curve, trainer.lookups


def study_curve(study) -> list[dict[str, Any]]:
    """A search's trials in the order they ended: what each trained (rung, score, cost) and told the study."""
    curve = []
    for t in sorted(study.trials, key=lambda t: (t.datetime_complete or t.datetime_start, t.number)):
        rungs = [r for r in t.user_attrs.get("rungs", []) if "from_trial" not in r]
        curve.append({"n": t.number, "state": t.state.name, "feasible": t.user_attrs.get("feasible"),
                      "promoted_from": t.user_attrs.get("promoted_from"), "params_in": dict(t.params),
                      "rung": rungs[-1]["rung"] if rungs else None,
                      "score": rungs[-1]["score"] if rungs else None,
                      "params": int(t.values[1]) if t.values else (t.user_attrs.get("planned_params") or {}).get("peak"),
                      "value": t.values[0] if t.values else None, "cost_s": t.user_attrs.get("cost_s", 0.0)})
    return curve


def curve_progress(curve: list[dict[str, Any]], budget: int, floor: float) -> list[dict[str, float]]:
    """After each trained rung run: configurations trained, cumulative training seconds, hypervolume of the
    full-fidelity (COMPLETE, feasible) trials so far: the product's own hypervolume function."""
    from autolor2c.search.pareto import hypervolume

    pts, out, configs, cost = [], [], 0, 0.0
    for t in curve:
        if t["rung"] is None:
            continue  # over budget: free, not trained
        if t["promoted_from"] is None:
            configs += 1
        cost += t["cost_s"]
        if t["value"] is not None:
            pts.append((t["value"], t["params"]))
        out.append({"configs": configs, "cost_s": cost, "hv": hypervolume(pts, budget, floor)})
    return out


# --------------------------------------------------------------------------------------------------
# Summary: computed from the curves alone
# --------------------------------------------------------------------------------------------------
def _boot_ci(xs: Sequence[float], stat=statistics.median, seed: int = 0) -> tuple[float, float]:
    rng = random.Random(seed)
    vals = sorted(stat([rng.choice(xs) for _ in xs]) for _ in range(BOOT))
    return vals[int(0.025 * BOOT)], vals[int(0.975 * BOOT) - 1]


def _reach(prog: list[dict[str, float]], target: float) -> tuple[float, float]:
    for p in prog:
        if p["hv"] >= target - 1e-12:
            return p["configs"], p["cost_s"]
    return math.inf, math.inf


def _hv_at_configs(prog: list[dict[str, float]], configs: int) -> float:
    hv = 0.0
    for p in prog:
        if p["configs"] > configs:
            break
        hv = p["hv"]
    return hv


def _hv_at(prog: list[dict[str, float]], cost: float) -> float:
    hv = 0.0
    for p in prog:
        if p["cost_s"] > cost + 1e-9:
            break
        hv = p["hv"]
    return hv


def _diff_ci(a: Sequence[float], b: Sequence[float], seed: int = 2) -> dict[str, Any]:
    """Difference of means of two independent samples, with a 95% bootstrap CI."""
    rng = random.Random(seed)
    d = sorted(statistics.fmean([rng.choice(a) for _ in a]) - statistics.fmean([rng.choice(b) for _ in b])
               for _ in range(BOOT))
    return {"mean": statistics.fmean(a) - statistics.fmean(b), "ci95": [d[int(0.025 * BOOT)], d[int(0.975 * BOOT) - 1]]}


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    budget, floor = results["budget_params"], results["trivial"]
    progs = {arm: [curve_progress(c, budget, floor) for c in runs["curves"]] for arm, runs in results["arms"].items()}
    final = {arm: [p[-1]["hv"] if p else 0.0 for p in ps] for arm, ps in progs.items()}
    out: dict[str, Any] = {"final_hv": {}, "p3": {}, "p4": {}}
    for arm, hv in final.items():
        lo, hi = _boot_ci(hv, statistics.fmean)
        out["final_hv"][arm] = {"mean": statistics.fmean(hv), "ci95": [lo, hi], "seeds": len(hv)}
    # Equal cost: every arm's hypervolume once it has spent the smallest of the arms' median total training
    # seconds (an arm that trains cheaply per configuration is not penalised for finishing early).
    totals = {arm: statistics.median([p[-1]["cost_s"] if p else 0.0 for p in ps]) for arm, ps in progs.items()}
    common = min(totals.values()) if totals else 0.0
    out["hv_at_cost"] = {"cost_s": common}
    at_cost = {arm: [_hv_at(p, common) for p in ps] for arm, ps in progs.items()}
    for arm, hv in at_cost.items():
        lo, hi = _boot_ci(hv, statistics.fmean)
        out["hv_at_cost"][arm] = {"mean": statistics.fmean(hv), "ci95": [lo, hi], "total_cost_median_s": totals[arm]}
    if "parego+asha" in at_cost and "moasha" in at_cost:
        out["hv_at_cost"]["default_minus_moasha"] = _diff_ci(at_cost["parego+asha"], at_cost["moasha"])
    if "random-full" in final:
        target = statistics.median(final["random-full"])
        out["p3"]["target_hv"] = target
        for arm, ps in progs.items():
            reach = [_reach(p, target) for p in ps]
            trials = [r[0] for r in reach]
            secs = [r[1] for r in reach]
            out["p3"][arm] = {"trials_median": statistics.median(trials), "trials_ci95": list(_boot_ci(trials)),
                              "seconds_median": statistics.median(secs), "seconds_ci95": list(_boot_ci(secs)),
                              "reached": sum(math.isfinite(t) for t in trials), "seeds": len(trials)}
    real = []
    for r in results.get("real_searches", []):
        prog = curve_progress(r["curve"], budget, floor)
        n = prog[-1]["configs"] if prog else 0
        hv = prog[-1]["hv"] if prog else 0.0
        replay = sorted(_hv_at_configs(p, n) for p in progs.get("parego+asha", []))
        below = sum(x < hv for x in replay) + 0.5 * sum(x == hv for x in replay)
        real.append({"study": r["study"], "storage": r["storage"], "configs": n, "hv": hv,
                     "replay_median": statistics.median(replay) if replay else None,
                     "replay_range_95": [replay[int(0.025 * len(replay))], replay[max(0, int(0.975 * len(replay)) - 1)]]
                     if replay else None,
                     "replay_percentile": 100.0 * below / len(replay) if replay else None})
    if real:
        out["real"] = real
    if "parego+asha" in final and "parego-full" in final:
        best = max(statistics.median(final["parego+asha"]), statistics.median(final["parego-full"]))
        target = 0.98 * best
        mf = [_reach(p, target)[1] for p in progs["parego+asha"]]
        full = [_reach(p, target)[1] for p in progs["parego-full"]]
        rng = random.Random(1)
        ratios = []
        for _ in range(BOOT):
            a = statistics.median([rng.choice(mf) for _ in mf])
            b = statistics.median([rng.choice(full) for _ in full])
            ratios.append(a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else math.inf)
        ratios.sort()
        m_mf, m_full = statistics.median(mf), statistics.median(full)
        out["p4"] = {"target_hv": target, "mf_seconds_median": m_mf, "full_seconds_median": m_full,
                     "ratio": m_mf / m_full if math.isfinite(m_mf) and math.isfinite(m_full) and m_full else math.inf,
                     "ratio_ci95": [ratios[int(0.025 * BOOT)], ratios[int(0.975 * BOOT) - 1]],
                     "mf_reached": sum(map(math.isfinite, mf)), "full_reached": sum(map(math.isfinite, full))}
    return out


def render(results: dict[str, Any]) -> str:
    s = results["summary"]
    m = results.get("machine", {})
    f = lambda x: "never" if not math.isfinite(x) else (f"{x:.0f}" if abs(x) >= 10 else f"{x:.3g}")  # noqa: E731
    lines = ["# Replays of the search on the tabular benchmark (P3, P4)", "",
             f"Table: {results['table_configs']} configurations x {len(results['fractions'])} rungs "
             f"({', '.join(f'{x:.3g}' for x in results['fractions'])}) x 2 training seeds, {results['task']}, budget "
             f"{results['budget_params']:,} params; hypervolume's score reference {results['trivial']:.4f} (input-blind). "
             f"Surrogate held-out Spearman: {results['surrogate_check']}. Replay lookups: {results['lookups']}.",
             f"Seconds charged per rung run: {results.get('rung_cost_s')} ({results.get('rung_cost_source')}).",
             f"Each search trains {results['configurations']} configurations; {results['seeds']} seeds per arm, "
             f"independent sampler and noise seeds per arm. CPU of the table: {m.get('cpu')}.", "",
             "## Final hypervolume (mean, 95% bootstrap CI)", "",
             md_table(["arm", "final HV", "95% CI", "seeds"],
                      [[a, f"{v['mean']:.4f}", f"[{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}]", v["seeds"]]
                       for a, v in s["final_hv"].items()])]
    if s.get("hv_at_cost"):
        c = s["hv_at_cost"]
        lines += [f"## Hypervolume at equal cost: after {c['cost_s']:.0f} training seconds (the smallest arm's median "
                  "total; mean, 95% bootstrap CI)", "",
                  md_table(["arm", "HV at equal cost", "95% CI", "median total train s"],
                           [[a, f"{v['mean']:.4f}", f"[{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}]",
                             f(v["total_cost_median_s"])] for a, v in c.items()
                            if a not in ("cost_s", "default_minus_moasha")])]
        if "default_minus_moasha" in c:
            d = c["default_minus_moasha"]
            lines += [f"Default (parego+asha) minus MOASHA: {d['mean']:+.4f} (95% CI [{d['ci95'][0]:+.4f}, "
                      f"{d['ci95'][1]:+.4f}]).", ""]
    if s.get("p3"):
        lines += [f"## P3: configurations and training seconds to reach random search's {results['configurations']}-"
                  f"configuration final hypervolume ({s['p3']['target_hv']:.4f}; median, 95% CI)", "",
                  md_table(["arm", "configs", "95% CI", "train s", "95% CI", "reached"],
                           [[a, f(v["trials_median"]), f"[{f(v['trials_ci95'][0])}, {f(v['trials_ci95'][1])}]",
                             f(v["seconds_median"]), f"[{f(v['seconds_ci95'][0])}, {f(v['seconds_ci95'][1])}]",
                             f"{v['reached']}/{v['seeds']}"] for a, v in s["p3"].items() if a != "target_hv"])]
    if s.get("real"):
        lines += ["## Real searches with the defaults beside the replays", "",
                  "Final hypervolume of each real search (its own study, real training) and where it falls among "
                  "the parego+asha replays' hypervolume after the same number of configurations.", "",
                  md_table(["search (its storage)", "configs", "real HV", "replays: median", "95% range", "percentile"],
                           [[_storage_label(r["storage"]), r["configs"], f"{r['hv']:.4f}", f"{r['replay_median']:.4f}",
                             f"[{r['replay_range_95'][0]:.4f}, {r['replay_range_95'][1]:.4f}]",
                             f"{r['replay_percentile']:.0f}"] for r in s["real"]])]
    if results.get("real_check"):
        lines += ["", "Out of sample: the surrogate (fitted on the whole table) against every rung run each real search "
                  "trained (`real_check`): Spearman of predicted vs real score, and the real score's mean excess over "
                  "the prediction (a real run is one seed; the forest predicts a two-seed mean).", "",
                  md_table(["search (its storage)", "table configurations", "rung", "runs", "of them in the table",
                            "Spearman", "mean excess"],
                           [[_storage_label(c["storage"]), c.get("table_configs", "?"), k, v["n"], v["in_table"],
                             f"{v['spearman']:.2f}", f"{v['mean_excess']:+.4f}"]
                            for c in results["real_check"] for k, v in c.items() if k.startswith("rung")])]
    if s.get("p4"):
        p = s["p4"]
        lines += ["## P4: multi-fidelity vs full fidelity (parego), each arm's own cost to 98% of the better arm's "
                  f"median final hypervolume ({p['target_hv']:.4f})", "",
                  f"Median training seconds: multi-fidelity {f(p['mf_seconds_median'])} ({p['mf_reached']} seeds reached), "
                  f"full {f(p['full_seconds_median'])} ({p['full_reached']} reached); ratio **{f(p['ratio'])}** "
                  f"(95% CI [{f(p['ratio_ci95'][0])}, {f(p['ratio_ci95'][1])}]).", ""]
    return "\n".join(lines) + "\n"


def _storage_label(url: str) -> str:
    """A real search's storage, short: an SQLite file relative to the repository."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        return os.path.relpath(path, Path(__file__).resolve().parents[1]) if os.path.isabs(path) else path
    return url


_JOB: tuple | None = None  # (ctx, table, surrogate, configurations), set before the worker pool forks


def _one_replay(job: tuple[str, int]) -> dict[str, Any]:
    arm, seed = job
    ctx, table, surrogate, configurations = _JOB
    t0 = time.process_time()
    if arm == "moasha":
        curve, lookups = replay_moasha(ctx, table, surrogate, seed, configurations)
    else:
        sampler, mf = ARMS[arm]
        curve, lookups = replay_search(ctx, table, surrogate, sampler, mf, seed=seed, configurations=configurations)
    return {"curve": curve, "lookups": lookups, "seconds": time.process_time() - t0}


def real_search_curve(url: str) -> dict[str, Any]:
    """A real search with the defaults (a study in a storage): its per-trial curve, to set beside the replays."""
    import optuna

    name = optuna.get_all_study_summaries(url)[0].study_name
    study = optuna.load_study(study_name=name, storage=url)
    return {"storage": url, "study": name, "curve": study_curve(study)}


def _table_and_surrogate(task: str, budget: str) -> tuple[Any, Table, Surrogate]:
    from autolor2c.search.study import SearchSettings, build_context
    from table_build import read_table

    from common import GLUE_DIR

    ctx = build_context(SearchSettings(task=task, budget=budget, data_dir=GLUE_DIR, progress=False))
    table = Table.from_jsonl(read_table(task), ctx.shape)
    cost_file = RESULTS / f"table_cost_{task}.json"
    if cost_file.is_file():  # a trial's own cost per rung, measured side by side (bench/table_cost.py)
        table.rung_cost = {int(k): v for k, v in json.loads(cost_file.read_text())["rung_wall_s"].items()}
    if len(table.runs) < 8:
        sys.exit(f"the table has {len(table.runs)} complete configurations; build more first (bench/table_build.py)")
    return ctx, table, Surrogate(table)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--budget", default="0.1M")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--configurations", type=int, default=40)
    ap.add_argument("--arms", default=",".join(a for a in ARMS if a != "gp+asha"))
    ap.add_argument("--workers", type=int, default=2, help="replays run at once (one per core)")
    ap.add_argument("--real", action="append", default=[],
                    help="storage URL of a real search with the defaults, compared with the replays (repeatable; added "
                         "to the real searches already in the results, also with --summarise)")
    ap.add_argument("--summarise", action="store_true", help="only recompute the summary from the saved curves")
    a = ap.parse_args()
    out = RESULTS / f"replay_{a.task}.json"
    ctx = table = surrogate = None
    if a.summarise:
        results = json.loads(out.read_text())
    else:
        from table_build import read_table

        rows = read_table(a.task)
        ctx, table, surrogate = _table_and_surrogate(a.task, a.budget)
        cost_file = RESULTS / f"table_cost_{a.task}.json"
        results = {"task": a.task, "budget_params": ctx.budget, "trivial": ctx.trivial, "fractions": list(table.fractions),
                   "table_configs": len(table.runs), "rung_cost_s": table.rung_cost,
                   "rung_cost_source": cost_file.name if cost_file.is_file() else "median of the table's runs", "configurations": a.configurations, "seeds": a.seeds,
                   "surrogate_check": surrogate_check(table), "machine": next(r for r in rows if r.get("kind") == "header").get("machine", {}),
                   "replay_machine": machine_info(), "arms": {}, "lookups": {"table": 0, "surrogate": 0}}
        arms = a.arms.split(",")
        global _JOB
        _JOB = (ctx, table, surrogate, a.configurations)
        jobs = [(arm, 1000 * (i + 1) + s) for i, arm in enumerate(arms) for s in range(a.seeds)]
        t0 = time.time()
        # Seeds are independent searches: run them on every core (fork keeps the table and surrogate).
        import multiprocessing as mp

        with mp.get_context("fork").Pool(a.workers) as pool:
            done = pool.map(_one_replay, jobs, chunksize=1)
        for arm in arms:
            mine = [d for (job_arm, _), d in zip(jobs, done) if job_arm == arm]
            results["arms"][arm] = {"sampler": ARMS[arm][0], "multi_fidelity": ARMS[arm][1],
                                    "curves": [d["curve"] for d in mine],
                                    "replay_cpu_s": round(sum(d["seconds"] for d in mine), 1)}
            for d in mine:
                for k, v in d["lookups"].items():
                    results["lookups"][k] += v
        print(f"{len(jobs)} replays in {time.time() - t0:.0f}s", flush=True)
        before = json.loads(out.read_text()) if out.is_file() else {}
        for k in ("real_searches", "real_check"):  # real training is dear: a new replay keeps what was measured
            results[k] = before.get(k, [])
    if a.real:  # add (or refresh) real searches; earlier ones stay, with their curves
        kept = [r for r in results.get("real_searches", []) if r["storage"] not in a.real]
        results["real_searches"] = kept + [real_search_curve(url) for url in a.real]
        import optuna

        if table is None:
            ctx, table, surrogate = _table_and_surrogate(a.task, a.budget)
        checks = {c["storage"]: c for c in results.get("real_check", [])}
        for url in a.real:
            study = optuna.load_study(study_name=optuna.get_all_study_summaries(url)[0].study_name, storage=url)
            checks[url] = {"storage": url, "table_configs": len(table.runs),
                           **real_check(table, surrogate, study, ctx.shape)}
        results["real_check"] = list(checks.values())
    results["summary"] = summarise(results)
    out.write_text(json.dumps(results, default=str))
    (RESULTS / f"replay_{a.task}.md").write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    main()
