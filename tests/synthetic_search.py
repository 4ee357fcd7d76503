"""A synthetic search for the study tests: a fake trainer whose score is a deterministic function of the
sampled configuration and of the rung fidelity (``args.max_train_samples``), with the exact analytic
parameter count, so every promotion decision of a study can be replayed from its rung records. Its
fixtures (``fast_context``, ``fast_tmp``, ``study_a``) are in conftest.py."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math

from autolor2c.search.fidelity import Fidelity
from autolor2c.search.run import Objective, SearchSettings, plan_to_spec
from autolor2c.train import TrainResult, count_adapter_params, planned_steps

FULL = 900
FID = Fidelity((1 / 9, 1 / 3, 1.0), 3.0)


class Killed(BaseException):
    """Stands for kill -9 mid-trial: neither Exception nor KeyboardInterrupt, so Optuna leaves the trial RUNNING."""


def full_score(spec, learning_rate: float, shape) -> float:
    params = count_adapter_params(spec, shape)["final"]
    key = json.dumps(spec.to_dict(), sort_keys=True, default=str) + repr(float(learning_rate))
    noise = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 16**8
    return round(0.55 + 0.3 * (1 - math.exp(-params / 20_000)) + 0.1 * noise, 9)


def rung_score(full: float, fraction: float) -> float:
    return full * (0.8 + 0.2 * fraction)


def rung_fraction(ctx, args) -> float:
    """The rung a run is: its steps are exactly a rung's share of the full run's, on every row (else it fails)."""
    assert args.max_train_samples in (None, ctx.n_train_full), "a rung trains on every row"
    steps = planned_steps(args, ctx.n_train_full)
    for f in ctx.fidelity.fractions:
        if f > 0 and steps == (ctx.full_steps if f >= 1 else math.ceil(f * ctx.full_steps)):
            return f
    raise AssertionError(f"a run of {steps} steps is no rung of the {ctx.full_steps}-step full run")


def fake_result(ctx, spec, args, score: float, params: int, wall_time_s: float = 0.0, **extra) -> TrainResult:
    """What ``train()`` would return for ``score`` and ``params``, without training."""
    return TrainResult(task=ctx.task.name, method=spec.method, model="fake", config=spec.to_dict(),
                       final_structure={"spans": []}, train_args=dataclasses.asdict(args), scores={"accuracy": score},
                       eval_split="selection", primary_metric="accuracy", primary_score=score, trainable_params=params,
                       analytic_params=params, planned_params={"initial": params, "peak": params, "final": params},
                       head_params=0, backbone_params=ctx.shape.backbone_params, steps=1, epochs=1.0,
                       n_train=args.max_train_samples, n_eval=1, n_dev=1, wall_time_s=wall_time_s,
                       cpu_time_s=wall_time_s, adapted_model=object(), **extra)


def make_fake(ctx, calls: list | None = None, kill_on_rung1_call: int | None = None):
    state = {"rung1_calls": 0}

    def fake(task, spec, args, model_name=None, data_dir=None, out_dir=None):
        assert data_dir == ctx.settings.data_dir and model_name == ctx.settings.model
        fraction = rung_fraction(ctx, args)
        if calls is not None:
            calls.append((json.dumps(spec.to_dict(), sort_keys=True, default=str), fraction))
        if math.isclose(fraction, 1 / 3):
            state["rung1_calls"] += 1
            if kill_on_rung1_call is not None and state["rung1_calls"] == kill_on_rung1_call:
                raise Killed()
        score = rung_score(full_score(spec, args.learning_rate, ctx.shape), fraction)
        return fake_result(ctx, spec, args, score, count_adapter_params(spec, ctx.shape)["final"], wall_time_s=0.01,
                           history=[{"op": "init", "step": 0, "extra": 1}])

    return fake


def factory(calls=None, kill_on_rung1_call=None):
    return lambda ctx: Objective(ctx, trainer=make_fake(ctx, calls, kill_on_rung1_call))


def settings_for(glue_dir, storage, name, trials, **kw) -> SearchSettings:
    kw = {"budget": "0.1M", "sampler": "random", "builtins_first": False, **kw}
    return SearchSettings(task="sst2", data_dir=str(glue_dir), storage=storage, study_name=name, trials=trials,
                          max_train_samples=FULL, fidelity=FID, seeds=0, progress=False, **kw)


def expected_full(t, ctx) -> tuple[float, float]:
    plan = ctx.space.fixed_plan(t.params, ctx.shape.num_layers)
    spec = plan_to_spec(plan)
    return full_score(spec, plan.train.get("learning_rate", 2e-3), ctx.shape), \
        float(count_adapter_params(spec, ctx.shape)["final"])


# --------------------------------------------------------------------------------------------------
# A front by hand, and a seed trainer that records seeds as the real one does (the pick-rule tests)
# --------------------------------------------------------------------------------------------------
def study_with_front(scores_params):
    """A study whose complete, feasible trials have these (score, params)."""
    import optuna

    from autolor2c.search import record

    study = optuna.create_study(directions=["maximize", "minimize"])
    for score, params in scores_params:
        study.add_trial(optuna.trial.create_trial(values=[score, params], user_attrs={record.FEASIBLE: True}))
    return study


def record_seeds(study, number, scores):
    """Trial ``number``'s seeds 1.. scored ``scores`` on the selection split, as train_seeds records them."""
    from autolor2c.search import record

    runs = dict(study.user_attrs.get(record.SEED_RUNS, {}))
    runs[str(number)] = [{"seed": k + 1, "selection": s} for k, s in enumerate(scores)]
    study.set_user_attr(record.SEED_RUNS, runs)


def fake_seed_trainer(later: dict[int, list[float]], trained: list[int]):
    """A ``train_seeds`` that gives trial n the seed scores ``later[n]`` and appends n to ``trained`` each
    time it has to train (a trial whose seeds are recorded trains nothing)."""
    import statistics

    from autolor2c.search import record
    from autolor2c.search.front import selection_over_seeds

    def train_seeds(study, ctx, t, seeds, progress=True, role=""):
        if len(record.extra_seed_runs(study, t.number)) + 1 < seeds:
            trained.append(t.number)
            record_seeds(study, t.number, later[t.number][:seeds - 1])
        scores = selection_over_seeds(study, t)[:seeds]
        return {"trial": t.number, "seeds": len(scores), "selection_mean": statistics.fmean(scores),
                "runs": [{"selection": x} for x in scores]}
    return train_seeds
