"""Multi-fidelity: the front and hypervolume by hand, ASHA's promotion rule, rungs from (minimum, full, eta),
and a study's rung records replayed against the rule, on the synthetic search (tests/synthetic_search.py)."""

from __future__ import annotations

import json
import math

import optuna
import pytest
from optuna.trial import TrialState

from autolor2c.errors import UserError
from autolor2c.search import record
from autolor2c.search.fidelity import Fidelity, next_promotion
from autolor2c.search.front import (front_indices, hypervolume, non_dominated_sort, pareto_front, pick_best, pick_knee,
                                    promotion_order, trained_configurations)
from autolor2c.search.run import Objective, run_search
from synthetic_search import FID, FULL, expected_full, fake_result, rung_score, settings_for

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
                                     user_attrs={record.RUNGS: [dict(r) for r in rungs], **attrs})


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
    assert [r["score"] for t in trials for r in record.rung_records(t, 0)] == [0.5, 0.9, 0.7]
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


def replay_promotions(trials, fid: Fidelity) -> int:
    """Check every promotion of a sequential study against ASHA's rule on the records that existed when it was
    queued (a promotion is queued after the previous trial ended, so: every earlier trial); returns how many."""
    checked = 0
    trials = sorted(trials, key=lambda t: t.number)
    promos = [t for t in trials if "promoted_from" in t.user_attrs and "retry_of" not in t.user_attrs]
    for p in promos:
        k = p.user_attrs["start_rung"] - 1
        earlier = [t for t in trials if t.number < p.number and t.state in DONE]
        entries = [((r["score"], r["params"]), t.number) for t in earlier for r in t.user_attrs.get(record.RUNGS, [])
                   if r["rung"] == k and r.get("from_trial") is None]
        assert len(entries) >= fid.eta, "nothing is promoted before eta results exist at the rung"
        top = [entries[i][1] for i in fid.promotable([e[0] for e in entries])]
        assert p.user_attrs["promoted_from"] in top, (p.number, k, top)
        checked += 1
    # and each configuration is promoted once per rung
    keys = [(p.user_attrs["promoted_from"], p.user_attrs["start_rung"]) for p in promos]
    assert len(keys) == len(set(keys))
    return checked


def test_pruned_trials_keep_their_rung_scores(study_a):
    study, ctx, _, _, _, _ = study_a
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED and t.user_attrs.get("trained")]
    assert pruned, "a 24-configuration study with eta=3 must pause something below the top rung"
    for t in pruned:
        assert t.values is None
        rungs = t.user_attrs[record.RUNGS]
        k = t.user_attrs["stopped_at_rung"]
        assert k == rungs[-1]["rung"] == t.user_attrs.get("start_rung", 0) and k < len(FID.fractions) - 1
        assert rungs[-1].get("from_trial") is None and all(r.get("from_trial") is not None for r in rungs[:-1])
        full, params = expected_full(t, ctx)
        for j, r in enumerate(rungs):
            assert r["rung"] == j and r["fraction"] == FID.fractions[j]
            assert r["n_train"] == FULL  # every rung trains on every row
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
        rungs = t.user_attrs[record.RUNGS]
        assert [r["fraction"] for r in rungs] == list(FID.fractions)
        assert all(r["score"] < t.values[0] for r in rungs[:-1])  # never a lower-rung score
        assert t.user_attrs["n_train"] == FULL and "stopped_at_rung" not in t.user_attrs
    for t in study.trials:  # over budget: never trained, no rungs, no made-up score, not counted
        if t.user_attrs.get("feasible") is False:
            assert t.state == TrialState.PRUNED and t.values is None and not t.user_attrs["trained"]
            assert record.RUNGS not in t.user_attrs and t.constraints["budget"] > 0
    # every promotion follows the rule on the records, and the trainer ran exactly the recorded rungs
    assert replay_promotions(study.trials, FID) > 0
    own = sum(1 for t in study.trials for r in t.user_attrs.get(record.RUNGS, []) if r.get("from_trial") is None)
    assert len(calls) == own
    assert objective.trained == [t.number for t in study.trials if t.user_attrs.get("trained")]
    reached = [sum(1 for t in study.trials for r in t.user_attrs.get(record.RUNGS, [])
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
