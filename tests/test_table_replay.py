"""The tabular benchmark's replay (bench/table_replay.py) is the product's search with a table for a trainer:
for configurations the table holds it reproduces a real search exactly (same trials, scores, costs); its
summary is a function of the committed per-trial curves alone."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import table_replay as R  # noqa: E402

from autolor2c.search.study import Objective, SearchSettings, build_context, cost_totals, run_search  # noqa: E402
from autolor2c.train import TrainResult, count_adapter_params  # noqa: E402


def _synthetic_trainer(shape):
    """A deterministic stand-in for training: the score grows with rank and fidelity, plus per-config noise."""
    def train(task, spec, args, model_name=None, data_dir=None, out_dir=None):
        key = R.spec_key(spec)
        noise = int(hashlib.sha256(key.encode()).hexdigest()[:6], 16) / 16**6 * 0.05
        score = 0.6 + 0.05 * math.log2(spec.lor2c.rank) + noise + 0.02 * math.log(args.max_train_samples)
        params = count_adapter_params(spec, shape)["final"]
        return TrainResult(task=task.name, method="lor2c", model="synthetic", config=spec.to_dict(),
                           final_structure={"method": "lor2c", "spans": spec.lor2c.spans}, train_args={}, scores={},
                           eval_split="selection", primary_metric="accuracy", primary_score=score, trainable_params=params,
                           analytic_params=params, planned_params={}, head_params=0, backbone_params=0, steps=7,
                           epochs=1.0, n_train=args.max_train_samples, n_eval=1, n_dev=1,
                           wall_time_s=0.001 * args.max_train_samples + params * 1e-6, cpu_time_s=0.5)
    return train


@pytest.fixture(scope="module")
def recorded(glue_dir):
    settings = SearchSettings(task="sst2", budget="0.1M", data_dir=str(glue_dir), storage="memory", study_name="real",
                              trials=14, seeds=0, progress=False, min_steps=0, max_eval_samples=32)
    ctx = build_context(settings)
    study, _, _, _ = run_search(settings, objective_factory=lambda c: Objective(c, trainer=_synthetic_trainer(ctx.shape)),
                                ctx=ctx)
    return ctx, study


def test_replay_of_recorded_configurations_reproduces_the_search(recorded):
    ctx, study = recorded
    assert any(t.user_attrs.get("promoted_from") is not None for t in study.trials), "ASHA should promote some"
    table = R.Table.from_study(study, ctx.shape)
    curve, lookups = R.replay_search(ctx, table, None, "parego", True, seed=ctx.settings.seed, configurations=14)
    real = R.study_curve(study)
    assert lookups["surrogate"] == 0 and lookups["table"] == sum(1 for t in real if t["rung"] is not None)
    strip = lambda c: [{k: v for k, v in t.items() if k != "n"} for t in c]  # noqa: E731
    assert strip(curve) == strip(real)  # the same trials in the same order, the same scores and costs
    prog_real = R.curve_progress(real, ctx.budget, ctx.trivial)
    assert prog_real[-1]["cost_s"] == pytest.approx(cost_totals(study)["wall_s"], abs=1e-2)
    assert prog_real[-1]["configs"] == 14


def test_replay_needs_the_surrogate_off_the_table_and_uses_it(recorded):
    ctx, study = recorded
    table = R.Table.from_study(study, ctx.shape)
    small = R.Table(dict(list(table.runs.items())[:6]), table.fractions,
                    {k: table.features[k] for k in list(table.runs)[:6]})
    missing = next(t for t in study.trials if t.user_attrs.get("trained") and R.spec_key(R.plan_to_spec(R.trial_plan(t)))
                   not in small.runs)
    args = ctx.settings.train_args({}, stage="trial", n_full=ctx.n_train_full)
    with pytest.raises(KeyError, match="not in the table"):
        R.TableTrainer(small, ctx.shape, ctx.n_train_full, 0)(ctx.task, R.plan_to_spec(R.trial_plan(missing)), args)
    # a surrogate needs every configuration at every rung: take the complete ones
    full = R.Table({k: v for k, v in table.runs.items() if len(v) == 2}, table.fractions, table.features)
    if len(full.runs) < 3:
        full = R.Table({k: {0: v[0], 1: v[0]} for k, v in table.runs.items()}, table.fractions, table.features)
    sur = R.Surrogate(full)
    curve, lookups = R.replay_search(ctx, full, sur, "random", False, seed=3, configurations=10)
    assert lookups["surrogate"] > 0
    scores = [t["score"] for t in curve if t["score"] is not None]
    lo = min(r["selection"] for v in full.runs.values() for rs in v.values() for r in rs)
    hi = max(r["selection"] for v in full.runs.values() for rs in v.values() for r in rs)
    assert all(lo - 0.2 < s < hi + 0.2 for s in scores)


def test_time_to_target_reads_the_curve():
    curve = [{"rung": 0, "promoted_from": None, "cost_s": 1.0, "value": None, "params": 10},
             {"rung": None, "promoted_from": None, "cost_s": 0.0, "value": None, "params": 10**9},  # over budget
             {"rung": 1, "promoted_from": 0, "cost_s": 3.0, "value": 0.8, "params": 50},
             {"rung": 0, "promoted_from": None, "cost_s": 1.0, "value": None, "params": 20}]
    prog = R.curve_progress(curve, budget=100, floor=0.5)
    assert [p["configs"] for p in prog] == [1, 1, 2] and [p["cost_s"] for p in prog] == [1.0, 4.0, 5.0]
    assert prog[1]["hv"] == pytest.approx((0.8 - 0.5) * (1 - 0.5))
    assert R._reach(prog, 0.1) == (1, 4.0) and R._reach(prog, 0.2) == (math.inf, math.inf)


def test_committed_replay_summary_is_recomputed_from_its_curves():
    path = REPO / "bench" / "results" / "replay_sst2.json"
    if not path.is_file():
        pytest.skip("no committed replay yet (bench/table_replay.py writes it)")
    results = json.loads(path.read_text())
    again = json.loads(json.dumps(R.summarise(results), default=str))
    assert again == results["summary"]


def test_outside_anchor_moasha_runs_on_the_same_table_and_budget_rule(recorded):
    pytest.importorskip("syne_tune")  # a bench-only extra (pip install --no-deps syne-tune==0.16.0)
    ctx, study = recorded
    table = R.Table.from_study(study, ctx.shape)
    full = R.Table({k: v for k, v in table.runs.items() if len(v) == 2}, table.fractions, table.features)
    curve, lookups = R.replay_moasha(ctx, full, R.Surrogate(full), seed=5, configurations=12)
    prog = R.curve_progress(curve, ctx.budget, ctx.trivial)
    assert prog[-1]["configs"] == 12 and sum(lookups.values()) == len(prog)
    assert all(t["params"] > ctx.budget for t in curve if t["rung"] is None)  # free, not counted
    promoted = [t for t in curve if t["promoted_from"] is not None]
    assert promoted and all(t["value"] is not None for t in promoted)  # only top-rung runs reach the front
    assert len(promoted) < 12  # MOASHA stopped some at the first rung


def test_a_table_with_a_rung_cost_charges_it_for_every_run_on_and_off_the_table(recorded):
    """The built table's runs were timed on a loaded machine: the replay charges each rung run the measured
    per-rung cost of a trial instead (bench/table_cost.py), whether the run comes from the table or the surrogate."""
    ctx, study = recorded
    table = R.Table.from_study(study, ctx.shape)
    full = R.Table({k: v for k, v in table.runs.items() if len(v) == 2}, table.fractions, table.features,
                   rung_cost={0: 7.0, 1: 19.0})
    curve, lookups = R.replay_search(ctx, full, R.Surrogate(full), "random", True, seed=4, configurations=10)
    assert lookups["table"] + lookups["surrogate"] == sum(1 for t in curve if t["rung"] is not None)
    assert {(t["rung"], t["cost_s"]) for t in curve if t["rung"] is not None} <= {(0, 7.0), (1, 19.0)}
    assert any(t["rung"] == 1 for t in curve) and any(t["rung"] == 0 for t in curve)


def test_real_check_pairs_every_rung_run_of_a_real_search_with_a_prediction(recorded):
    ctx, study = recorded
    whole = R.Table.from_study(study, ctx.shape)
    both = {k: v for k, v in whole.runs.items() if len(v) == 2}  # a surrogate needs both rungs of a configuration
    table = R.Table(both, whole.fractions, {k: whole.features[k] for k in both})
    check = R.real_check(table, R.Surrogate(table), study, ctx.shape)
    own = [r for t in study.trials if t.user_attrs.get("trained") for r in t.user_attrs["rungs"] if "from_trial" not in r]
    for rung in (0, 1):
        c = check[f"rung{rung}"]
        assert c["n"] == sum(r["rung"] == rung for r in own)
        assert c["in_table"] == sum(len(v[rung]) for v in both.values())
        assert -1.0 <= c["spearman"] <= 1.0 and math.isfinite(c["mean_excess"])
