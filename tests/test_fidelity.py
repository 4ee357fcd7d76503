"""Multi-fidelity rungs, resume mid-rung and warm start, on a synthetic objective (no training).

The fake trainer returns a score that is a deterministic function of the sampled configuration and of
the rung fidelity (``args.max_train_samples``), and the exact analytic parameter count, so every
promotion decision of a study can be replayed from its rung records.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
import math
import os
import random
import socket
import shutil
import subprocess
import tempfile
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import autolor2c.search.study as study_mod
from autolor2c.errors import UserError
from autolor2c.search.fidelity import RUNGS_ATTR, Fidelity, next_promotion, rung_points
from autolor2c.search.pareto import (front_indices, hypervolume, non_dominated_sort, pick_best, pick_knee,
                                     promotion_order)
from autolor2c.search.study import (WORKER_ATTR, Objective, SearchSettings, pareto_front, plan_to_spec, run_search,
                                    trained_configurations, warm_start)
from autolor2c.train import TrainResult, count_adapter_params

FULL = 900
FID = Fidelity((1 / 9, 1 / 3, 1.0), 3.0)
DONE = (TrialState.COMPLETE, TrialState.PRUNED)


# --------------------------------------------------------------------------------------------------
# Pareto arithmetic and the promotion rule on hand-made points
# --------------------------------------------------------------------------------------------------
def test_non_dominated_sort_and_front_by_hand():
    pts = [(0.9, 100), (0.8, 50), (0.8, 60), (0.7, 60), (0.95, 200)]
    assert non_dominated_sort(pts) == [0, 0, 1, 2, 0]
    assert front_indices(pts) == [1, 0, 4]           # by params
    assert promotion_order(pts) == [4, 0, 1, 2, 3]  # front first, then score
    # equal points do not dominate each other
    assert non_dominated_sort([(0.5, 10), (0.5, 10)]) == [0, 0]


def test_hypervolume_by_hand():
    budget = 100
    pts = [(0.6, 10), (0.8, 50), (0.7, 60), (0.9, 120)]  # (0.7, 60) dominated; (0.9, 120) over budget
    # staircase over [0, score] x [params / budget, 1]: 0.6 * (1 - 0.1) + (0.8 - 0.6) * (1 - 0.5)
    assert hypervolume(pts, budget) == pytest.approx(0.54 + 0.10)
    # with a score floor of 0.5: (0.6 - 0.5) * 0.9 + (0.8 - 0.6) * 0.5
    assert hypervolume(pts, budget, score_floor=0.5) == pytest.approx(0.09 + 0.10)
    # order does not matter, dominated points add nothing
    assert hypervolume(list(reversed(pts)), budget) == pytest.approx(0.64)
    assert hypervolume(pts[:2], budget) == pytest.approx(0.64)
    assert hypervolume([], budget) == 0.0
    assert hypervolume([(0.9, 120)], budget) == 0.0
    assert hypervolume([(1.0, 0)], budget) == pytest.approx(1.0)


def test_pick_knee_and_best_by_hand():
    # front normalised: (0, 0), (0.75, 0.1), (0.875, 0.5), (1, 1); the knee is farthest from the diagonal
    pts = [(0.5, 0), (0.85, 50), (0.7, 40), (0.8, 10), (0.9, 100)]  # (0.7, 40) is dominated by (0.8, 10)
    assert pick_knee(pts) == 3
    assert pick_best(pts) == 4
    assert pick_best([(0.8, 20), (0.8, 10)]) == 1  # ties go to fewer params
    # two-point fronts fall back to the best score
    assert pick_knee([(0.5, 0), (0.9, 100), (0.4, 50)]) == 1


POINT_SETS = [
    [(0.71, 3000)],
    [(0.71, 3000), (0.65, 1000)],
    [(0.71, 3000), (0.65, 1000), (0.60, 5000)],
    [(0.9, 90_000), (0.8, 20_000), (0.85, 40_000), (0.7, 30_000), (0.6, 50_000), (0.75, 10_000), (0.5, 5_000)],
    [(0.50 + 0.037 * ((7 * i) % 11), 1000 + 997 * ((5 * i) % 13)) for i in range(13)],
]


@pytest.mark.parametrize("eta", [2.0, 3.0, 4.0])
@pytest.mark.parametrize("points", POINT_SETS)
def test_promotable_is_the_top_floor_n_over_eta_of_promotion_order(points, eta):
    fid = Fidelity((0.25, 1.0), eta)
    n = len(points)
    assert fid.promotable(points) == promotion_order(points)[: math.floor(n / eta)]


def test_nothing_is_promoted_before_eta_results():
    """No first-trial bias: a rung with fewer than eta results promotes nobody, however good."""
    assert FID.promotable([(0.99, 1.0)]) == []
    assert FID.promotable([(0.99, 1.0), (0.1, 1.0)]) == []
    assert FID.promotable([(0.1, 1.0), (0.99, 1.0), (0.5, 1.0)]) == [1]


def _trial(number, state, rungs=(), **attrs):
    if state == TrialState.WAITING:
        return optuna.trial.create_trial(state=state, user_attrs=attrs)
    return optuna.trial.create_trial(state=state, values=[0.0, 1.0] if state == TrialState.COMPLETE else None,
                                     user_attrs={RUNGS_ATTR: [dict(r) for r in rungs], **attrs})


def _numbered(trials):
    for n, t in enumerate(trials):
        t.number = n
    return trials


def test_next_promotion_follows_asha():
    P = TrialState.PRUNED
    r0 = lambda s: [{"rung": 0, "score": s, "params": 10.0}]  # noqa: E731
    # two results at rung 0: nothing yet
    assert next_promotion(_numbered([_trial(0, P, r0(0.9)), _trial(1, P, r0(0.5))]), FID) is None
    # a third: the best of three goes to rung 1
    three = _numbered([_trial(0, P, r0(0.5)), _trial(1, P, r0(0.9)), _trial(2, P, r0(0.7))])
    assert next_promotion(three, FID) == (1, 1)
    # once it is queued (or running, or done), it is not promoted again; nobody else is due yet
    queued = three + [_trial(3, TrialState.WAITING, promoted_from=1, start_rung=1)]
    assert next_promotion(_numbered(queued), FID) is None
    # a copied lower-rung record (from_trial) is not a second result at that rung
    copied = [{"rung": 0, "score": 0.9, "params": 10.0, "from_trial": 1}, {"rung": 1, "score": 0.3, "params": 10.0}]
    trials = _numbered(three + [_trial(3, P, copied, promoted_from=1, start_rung=1)])
    assert next_promotion(trials, FID) is None
    assert rung_points(trials, 0) == [(0.5, 10.0), (0.9, 10.0), (0.7, 10.0)]
    # higher rungs first: three results at rung 1 promote their best to rung 2 before rung 0 is looked at
    r1 = lambda s: [{"rung": 1, "score": s, "params": 10.0}]  # noqa: E731
    many = _numbered([_trial(0, P, r0(s)) for s in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)]
                     + [_trial(6, P, r1(s)) for s in (0.2, 0.8, 0.4)])
    assert next_promotion(many, FID) == (7, 2)


def test_fidelity_constructors():
    g = Fidelity.geometric()
    assert g.fractions == pytest.approx((1 / 3, 1.0)) and g.eta == 3.0 and g.enabled
    assert Fidelity.geometric(1 / 9).fractions == pytest.approx((1 / 9, 1 / 3, 1.0))
    assert Fidelity.geometric(0.25, 2.0).fractions == pytest.approx((0.25, 0.5, 1.0))
    assert Fidelity.parse("1, 0.1,0.3", 3.0).fractions == (0.1, 0.3, 1.0)
    assert Fidelity.parse(None, 3.0) == g
    assert not Fidelity.off().enabled
    for bad in ("0.5,2", "0.5", "x,1", "0.5,0.5,1", "0,1", ""):
        with pytest.raises(UserError):
            Fidelity.parse(bad, 3.0)
    with pytest.raises(UserError):
        Fidelity.parse("0.5,1", 1.0)
    with pytest.raises(UserError):
        Fidelity.geometric(eta=1.0)
    with pytest.raises(UserError):
        Fidelity.geometric(min_fraction=0.0)


def test_rung_points_reads_one_rung():
    class T:
        def __init__(self, number, rungs):
            self.number, self.user_attrs = number, {RUNGS_ATTR: rungs}

    trials = [T(0, [{"rung": 0, "score": 0.5, "params": 10}, {"rung": 1, "score": 0.6, "params": 10}]),
              T(1, [{"rung": 0, "score": None, "params": 20}]),
              T(2, [{"rung": 0, "score": 0.7, "params": 30}]),
              T(3, [])]
    assert rung_points(trials, 0) == [(0.5, 10.0), (0.7, 30.0)]
    assert rung_points(trials, 0, exclude_number=2) == [(0.5, 10.0)]
    assert rung_points(trials, 1) == [(0.6, 10.0)]
    assert rung_points(trials, 2) == []


# --------------------------------------------------------------------------------------------------
# The synthetic objective
# --------------------------------------------------------------------------------------------------
class Killed(BaseException):
    """Stands for kill -9 mid-trial: neither Exception nor KeyboardInterrupt, so Optuna leaves the trial RUNNING."""


def full_score(spec, learning_rate: float, shape) -> float:
    params = count_adapter_params(spec, shape)["final"]
    key = json.dumps(spec.to_dict(), sort_keys=True, default=str) + repr(float(learning_rate))
    noise = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 16**8
    return round(0.55 + 0.3 * (1 - math.exp(-params / 20_000)) + 0.1 * noise, 9)


def rung_score(full: float, fraction: float) -> float:
    return full * (0.8 + 0.2 * fraction)


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
        fraction = args.max_train_samples / ctx.n_train_full
        if calls is not None:
            calls.append((json.dumps(spec.to_dict(), sort_keys=True, default=str), args.max_train_samples))
        if args.max_train_samples == round(ctx.n_train_full / 3):
            state["rung1_calls"] += 1
            if kill_on_rung1_call is not None and state["rung1_calls"] == kill_on_rung1_call:
                raise Killed()
        score = rung_score(full_score(spec, args.learning_rate, ctx.shape), fraction)
        return fake_result(ctx, spec, args, score, count_adapter_params(spec, ctx.shape)["final"], wall_time_s=0.01,
                           history=[{"op": "init", "step": 0, "extra": 1}])

    return fake


def factory(calls=None, kill_on_rung1_call=None):
    return lambda ctx: Objective(ctx, trainer=make_fake(ctx, calls, kill_on_rung1_call))


@pytest.fixture(scope="module")
def fast_context():
    """Build the real context (embedded model + SST-2) once for the module; later run_search calls with the
    same model/data/budget reuse it with their own settings (keeps the module within seconds)."""
    real = study_mod.build_context
    cache: dict = {}

    def cached(settings, name=None):
        key = (settings.task, settings.model, settings.budget, settings.space_path(), settings.data_dir,
               settings.max_train_samples, settings.max_eval_samples, repr(settings.fidelity))
        if key not in cache:
            cache[key] = real(settings, name)
            gc.collect()
            gc.freeze()  # what the first build imported and kept alive, too
        name = name or settings.study_name or study_mod.default_study_name(settings)
        return dataclasses.replace(cache[key], settings=settings, out=settings.out_dir(name).resolve())

    # run_search collects garbage after every trial; with torch and transformers loaded a full collection
    # takes ~0.3 s, so park what is alive now in the permanent generation while this module runs.
    gc.collect()
    gc.freeze()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(study_mod, "build_context", cached)
            yield cache
    finally:
        gc.unfreeze()


@pytest.fixture
def fast_tmp(tmp_path):
    """A folder for SQLite files: in RAM where there is one (each Optuna write is a commit, each commit an fsync)."""
    if os.access("/dev/shm", os.W_OK):
        d = Path(tempfile.mkdtemp(prefix="autolor2c-fid-", dir="/dev/shm"))
        yield d
        shutil.rmtree(d, ignore_errors=True)
    else:
        yield tmp_path


def settings_for(glue_dir, storage, name, trials, **kw) -> SearchSettings:
    kw = {"budget": "0.1M", "sampler": "random", "builtins_first": False, **kw}
    return SearchSettings(task="sst2", data_dir=str(glue_dir), storage=storage, study_name=name, trials=trials,
                          max_train_samples=FULL, fidelity=FID, seeds=0, progress=False, **kw)


def expected_full(t, ctx) -> tuple[float, float]:
    plan = ctx.space.fixed_plan(t.params, ctx.shape.num_layers)
    spec = plan_to_spec(plan)
    return full_score(spec, plan.train.get("learning_rate", 2e-3), ctx.shape), \
        float(count_adapter_params(spec, ctx.shape)["final"])


def replay_promotions(trials, fid: Fidelity) -> int:
    """Check every promotion of a sequential study against ASHA's rule on the records that existed when it was
    queued (a promotion is queued after the previous trial ended, so: every earlier trial); returns how many."""
    checked = 0
    trials = sorted(trials, key=lambda t: t.number)
    promos = [t for t in trials if "promoted_from" in t.user_attrs and "retry_of" not in t.user_attrs]
    for p in promos:
        k = p.user_attrs["start_rung"] - 1
        earlier = [t for t in trials if t.number < p.number and t.state in DONE]
        entries = [((r["score"], r["params"]), t.number) for t in earlier for r in t.user_attrs.get(RUNGS_ATTR, [])
                   if r["rung"] == k and r.get("from_trial") is None]
        assert len(entries) >= fid.eta, "nothing is promoted before eta results exist at the rung"
        top = [entries[i][1] for i in fid.promotable([e[0] for e in entries])]
        assert p.user_attrs["promoted_from"] in top, (p.number, k, top)
        checked += 1
    # and each configuration is promoted once per rung
    keys = [(p.user_attrs["promoted_from"], p.user_attrs["start_rung"]) for p in promos]
    assert len(keys) == len(set(keys))
    return checked


@pytest.fixture(scope="module")
def study_a(fast_context, tmp_path_factory, glue_dir):
    shm = os.access("/dev/shm", os.W_OK)
    tmp = Path(tempfile.mkdtemp(prefix="autolor2c-fid-", dir="/dev/shm")) if shm else tmp_path_factory.mktemp("fid")
    storage = f"sqlite:///{tmp}/x.db"
    calls: list = []
    settings = settings_for(glue_dir, storage, "A", 24)
    study, ctx, objective, _ = run_search(settings, objective_factory=factory(calls))
    yield study, ctx, objective, calls, storage, tmp
    if shm:
        shutil.rmtree(tmp, ignore_errors=True)


def test_pruned_trials_keep_their_rung_scores(study_a):
    study, ctx, _, _, _, _ = study_a
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED and t.user_attrs.get("trained")]
    assert pruned, "a 24-configuration study with eta=3 must pause something below the top rung"
    for t in pruned:
        assert t.values is None
        rungs = t.user_attrs[RUNGS_ATTR]
        k = t.user_attrs["stopped_at_rung"]
        assert k == rungs[-1]["rung"] == t.user_attrs.get("start_rung", 0) and k < len(FID.fractions) - 1
        assert rungs[-1].get("from_trial") is None and all(r.get("from_trial") is not None for r in rungs[:-1])
        full, params = expected_full(t, ctx)
        for j, r in enumerate(rungs):
            assert r["rung"] == j and r["fraction"] == FID.fractions[j]
            assert r["n_train"] == round(FULL * FID.fractions[j])
            assert r["score"] == pytest.approx(rung_score(full, FID.fractions[j]), abs=0, rel=1e-12)
            assert r["params"] == params


def test_only_full_fidelity_values_reach_the_study(study_a):
    study, ctx, objective, calls, _, _ = study_a
    assert all(t.state in DONE for t in study.trials)
    assert trained_configurations(study) == 24
    feasible = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert feasible
    for t in feasible:
        assert t.user_attrs["feasible"] and t.user_attrs["start_rung"] == len(FID.fractions) - 1
        full, params = expected_full(t, ctx)
        assert t.values[0] == full and t.values[1] == params == t.user_attrs["planned_params"]["final"]
        rungs = t.user_attrs[RUNGS_ATTR]
        assert [r["fraction"] for r in rungs] == list(FID.fractions)
        assert all(r["score"] < t.values[0] for r in rungs[:-1])  # never a lower-rung score
        assert t.user_attrs["n_train"] == FULL and "stopped_at_rung" not in t.user_attrs
    for t in study.trials:  # over budget: never trained, no rungs, no made-up score, not counted
        if t.user_attrs.get("feasible") is False:
            assert t.state == TrialState.PRUNED and t.values is None and not t.user_attrs["trained"]
            assert RUNGS_ATTR not in t.user_attrs and t.constraints["budget"] > 0
    # every promotion follows the rule on the records, and the trainer ran exactly the recorded rungs
    assert replay_promotions(study.trials, FID) > 0
    own = sum(1 for t in study.trials for r in t.user_attrs.get(RUNGS_ATTR, []) if r.get("from_trial") is None)
    assert len(calls) == own
    assert objective.trained == [t.number for t in study.trials if t.user_attrs.get("trained")]
    reached = [sum(1 for t in study.trials for r in t.user_attrs.get(RUNGS_ATTR, [])
                   if r["rung"] == k and r.get("from_trial") is None) for k in range(3)]
    assert reached[0] == 24 and 1 <= reached[2] < reached[1] < reached[0], reached


def test_promotion_is_not_biased_to_the_first_trials(fast_context, fast_tmp, glue_dir):
    """Configurations arrive from worst to best: the first ones must not be promoted for having come first
    (the old rule promoted a lone first result at once)."""
    storage = f"sqlite:///{fast_tmp}/order.db"
    order = iter(range(1000))
    rank_of: dict = {}

    def trainer(ctx):
        def fake(task, spec, args, **kw):
            key = json.dumps(spec.to_dict(), sort_keys=True, default=str)
            rank_of.setdefault(key, next(order))
            score = 0.5 + 0.001 * rank_of[key]  # later configurations are better
            return fake_result(ctx, spec, args, score, 1000)
        return Objective(ctx, trainer=fake)

    settings = settings_for(glue_dir, storage, "O", 9, budget="10M")
    study, _, _, _ = run_search(settings, objective_factory=trainer)
    assert replay_promotions(study.trials, FID) > 0
    new_configs = sorted(t.number for t in study.trials if t.user_attrs.get("trained") and "promoted_from" not in t.user_attrs)
    first_two = new_configs[:2]
    assert not any(t.user_attrs.get("promoted_from") in first_two for t in study.trials)


def test_pareto_front_is_the_front_of_the_full_fidelity_values(study_a):
    study, _, _, _, _, _ = study_a
    feasible = [t for t in study.trials if t.state == TrialState.COMPLETE and t.user_attrs["feasible"]]
    front = pareto_front(study)
    assert front
    pts = [(t.values[0], t.values[1]) for t in feasible]
    assert [t.number for t in front] == [feasible[i].number for i in front_indices(pts)]
    for t in front:
        assert not any(u.values[0] >= t.values[0] and u.values[1] <= t.values[1] and
                       (u.values[0], u.values[1]) != (t.values[0], t.values[1]) for u in feasible)
        assert t.values[1] <= 100_000


# --------------------------------------------------------------------------------------------------
# Resume in the middle of a rung
# --------------------------------------------------------------------------------------------------
def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_resume_in_the_middle_of_a_rung(fast_context, fast_tmp, glue_dir):
    storage = f"sqlite:///{fast_tmp}/x.db"
    settings = settings_for(glue_dir, storage, "R", 12)
    with pytest.raises(Killed):
        run_search(settings, objective_factory=factory(kill_on_rung1_call=2))
    study = optuna.load_study(study_name="R", storage=storage)
    running = [t for t in study.trials if t.state == TrialState.RUNNING]
    assert len(running) == 1
    orphan = running[0]
    assert orphan.system_attrs[WORKER_ATTR] == f"{socket.gethostname()}:{os.getpid()}"
    # killed while training a promotion at rung 1: the copied rung-0 record is not on it yet
    assert orphan.user_attrs["start_rung"] == 1 and RUNGS_ATTR not in orphan.user_attrs
    before = {t.number: t.user_attrs.get(RUNGS_ATTR) for t in study.trials if t.number != orphan.number}
    assert 0 < trained_configurations(study) < 12

    # this process is alive; make the orphan's worker a dead process on this host
    study._storage.set_trial_system_attr(orphan._trial_id, WORKER_ATTR, f"{socket.gethostname()}:{_dead_pid()}")

    calls: list = []
    study, ctx, objective, _ = run_search(settings, objective_factory=factory(calls))
    trials = study.trials
    failed = trials[orphan.number]
    assert failed.state == TrialState.FAIL and "interrupted" in failed.user_attrs["fail_reason"]
    retries = [t for t in trials if t.user_attrs.get("retry_of") == orphan.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.params == orphan.params
    assert {k: retry.user_attrs[k] for k in ("promoted_from", "start_rung")} == \
        {k: orphan.user_attrs[k] for k in ("promoted_from", "start_rung")}
    assert objective.trained[0] == retry.number  # the first trial after the resume is the retry
    assert retry.user_attrs[RUNGS_ATTR][-1]["rung"] == 1
    # the study reaches the requested number of configurations; nothing else failed or is left running
    assert trained_configurations(study) == 12
    assert [t.number for t in trials if t.state not in DONE] == [orphan.number]
    assert {n: trials[n].user_attrs.get(RUNGS_ATTR) for n in before} == before
    # the resumed sampler has its own seed: its random start-up draws no configuration the first run drew
    firsts = [_key(t.params) for t in trials if t.state in DONE and "promoted_from" not in t.user_attrs
              and "retry_of" not in t.user_attrs and t.user_attrs.get("feasible") is not False]
    assert len(firsts) == len(set(firsts))
    for t in trials:
        if t.state == TrialState.COMPLETE:
            assert t.values[0] == expected_full(t, ctx)[0]
    # resuming a finished study runs nothing more
    study, _, objective, _ = run_search(settings, objective_factory=factory())
    assert objective.trained == [] and len(study.trials) == len(trials)


# --------------------------------------------------------------------------------------------------
# Warm start
# --------------------------------------------------------------------------------------------------
def _key(params):
    return tuple(sorted(params.items()))


def test_warm_start_enqueues_exactly_the_pareto_configurations(study_a, glue_dir, capsys):
    a, _, _, _, storage, _ = study_a
    front = pareto_front(a)
    n_front = len(front)
    settings = settings_for(glue_dir, storage, "B", n_front + 2, warm_start="A")
    b, ctx, objective, _ = run_search(settings, objective_factory=factory())
    assert f"warm start: queued {n_front} configuration(s) from A" in capsys.readouterr().out
    trials = b.trials
    assert [t.params for t in trials[:n_front]] == [t.params for t in front]
    assert [t.user_attrs["warm_start_from"] for t in trials[:n_front]] == [f"A#{t.number}" for t in front]
    # nothing else was enqueued but ASHA's promotions: later trials are sampled or continue a configuration
    assert all("warm_start_from" not in t.user_attrs and
               ("fixed_params" not in t.system_attrs or "promoted_from" in t.user_attrs) for t in trials[n_front:])
    assert trained_configurations(b) == n_front + 2
    # A is untouched
    assert [t.number for t in pareto_front(optuna.load_study(study_name="A", storage=storage))] == \
        [t.number for t in front]

    # a second call does not enqueue them again
    settings = settings_for(glue_dir, storage, "B", n_front + 3, warm_start="A")
    b, _, _, _ = run_search(settings, objective_factory=factory())
    assert "warm start: queued 0 configuration(s) from A" in capsys.readouterr().out
    assert sum("warm_start_from" in t.user_attrs for t in b.trials) == n_front
    assert trained_configurations(b) == n_front + 3
    assert warm_start(b, "A", storage, ctx.space, ctx.shape.num_layers) == 0
    assert not [t for t in b.trials if t.state == TrialState.WAITING]


def test_warm_start_twice_before_running_enqueues_once(study_a, glue_dir):
    a, ctx, _, _, storage, tmp = study_a
    n_front = len(pareto_front(a))
    c = optuna.create_study(study_name="C", storage=storage, directions=["maximize", "minimize"])
    assert warm_start(c, "A", storage, ctx.space, ctx.shape.num_layers) == n_front
    assert warm_start(c, "A", storage, ctx.space, ctx.shape.num_layers) == 0
    waiting = [t for t in c.trials if t.state == TrialState.WAITING]
    assert len(waiting) == n_front
    assert sorted(_key(t.system_attrs["fixed_params"]) for t in waiting) == \
        sorted(_key(t.params) for t in pareto_front(a))


def test_warm_start_from_another_storage(study_a, glue_dir, fast_tmp, capsys):
    a, _, _, _, storage, _ = study_a
    front = pareto_front(a)
    other = f"sqlite:///{fast_tmp}/other.db"
    settings = settings_for(glue_dir, other, "B2", len(front), warm_start=f"{storage}#A")
    b, _, _, _ = run_search(settings, objective_factory=factory())
    assert f"queued {len(front)} configuration(s)" in capsys.readouterr().out
    started = [t for t in b.trials if "promoted_from" not in t.user_attrs]  # promotions continue them
    assert [t.params for t in started] == [t.params for t in front]
    assert [t.user_attrs["warm_start_from"] for t in started] == [f"A#{t.number}" for t in front]
    assert optuna.get_all_study_names(other) == ["B2"]


@pytest.mark.parametrize("source", ["nope", "{storage}#nope"])
def test_warm_start_from_a_missing_study_is_a_user_error(study_a, glue_dir, fast_tmp, source):
    _, _, _, _, storage, _ = study_a
    settings = settings_for(glue_dir, f"sqlite:///{fast_tmp}/w.db", "W", 2, warm_start=source.format(storage=storage))
    with pytest.raises(UserError, match="nope"):
        run_search(settings, objective_factory=factory())


# --------------------------------------------------------------------------------------------------
# The top rung is the run a user gets: built-ins first, the lr searched, the model kept
# --------------------------------------------------------------------------------------------------
def test_builtins_go_first_at_the_top_rung_once_and_the_suggested_lr_reaches_the_trainer(fast_context, fast_tmp,
                                                                                          glue_dir):
    seen = []

    def trainer(ctx):
        fake = make_fake(ctx)

        def run(task, spec, args, **kw):
            seen.append((args.learning_rate, args.max_train_samples, kw.get("out_dir")))
            return fake(task, spec, args, model_name=kw.get("model_name"), data_dir=kw.get("data_dir"))
        return Objective(ctx, trainer=run)

    out = fast_tmp / "out"
    settings = settings_for(glue_dir, f"sqlite:///{fast_tmp}/b.db", "B", 9, builtins_first=True, out=str(out))
    study, ctx, objective, _ = run_search(settings, objective_factory=trainer)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.user_attrs.get("builtin") for t in trials[:3]] == ["lor2c", "sharelor2c", "imlor2c"]
    assert sum(1 for t in trials if t.user_attrs.get("builtin")) == 3  # counted once, among the 9
    assert trained_configurations(study) == 9
    for t in trials[:3]:  # straight to the top rung: the trial is that built-in's baseline run
        assert t.state == TrialState.COMPLETE and [r["fraction"] for r in t.user_attrs[RUNGS_ATTR]] == [1.0]
        assert t.params["learning_rate"] == 2e-3
    # every trial's sampled lr is the lr its run trained with; only a top-rung run is given a folder to keep
    lrs = [t.params["learning_rate"] for t in trials if t.user_attrs.get("trained")]
    assert sorted(lr for lr, _, _ in seen) == sorted(lrs)
    assert len({lr for lr, _, _ in seen}) > 3
    for lr, n, folder in seen:
        assert (folder is not None) == (n == FULL)
        if folder is not None:
            assert folder.parent == (out / "trials").resolve()
