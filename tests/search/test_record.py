"""The trial record: rung records, configuration chains, trained, feasible, read by one module."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from autolor2c.search import record


def _trial(number, state, rungs=(), values=None, constraints=None, **attrs):
    t = optuna.trial.create_trial(state=state, values=values, user_attrs={record.RUNGS: list(rungs), **attrs},
                                  constraints=constraints)
    t.number = number
    return t


P, C = TrialState.PRUNED, TrialState.COMPLETE


def test_rung_records_skip_copies_and_unscored_records():
    t = _trial(0, P, [{"rung": 0, "score": 0.5, "params": 10}, {"rung": 1, "score": None, "params": 10},
                      {"rung": 0, "score": 0.9, "params": 10, "from_trial": 3}, {"rung": 2, "score": 0.7, "params": 10}])
    assert [r["score"] for r in record.rung_records(t)] == [0.5, 0.7]
    assert [r["score"] for r in record.rung_records(t, 2)] == [0.7]
    assert record.rung_records(t, 1) == []


def test_a_promotion_continues_its_configuration():
    a = _trial(0, P, [{"rung": 0, "score": 0.5, "params": 10.0}], trained=True)
    b = _trial(1, P, [{"rung": 0, "score": 0.6, "params": 20.0}], trained=True)
    a1 = _trial(2, C, [{"rung": 0, "score": 0.5, "params": 10.0, "from_trial": 0},
                       {"rung": 1, "score": 0.8, "params": 10.0}], values=[0.8, 10.0], trained=True,
                **{record.PROMOTED_FROM: 0, record.START_RUNG: 1})
    over = _trial(3, C, values=[0.0, 1e9], trained=False, feasible=False)
    chains = record.configuration_chains([a1, b, a, over])
    assert {k: [t.number for t in v] for k, v in chains.items()} == {0: [0, 2], 1: [1], 3: [3]}
    # the copied rung-0 record is not measured twice
    assert record.chain_rungs(chains[0]) == {0: (0.5, 10.0), 1: (0.8, 10.0)}
    # what --trials counts: two trained configurations (a promotion and an over-budget trial are not new ones)
    assert record.trained_configurations([a, b, a1, over]) == 2
    # a promotion of a promotion belongs to the first trial's chain
    a2 = _trial(4, C, [{"rung": 2, "score": 0.9, "params": 10.0}], values=[0.9, 10.0], trained=True,
                **{record.PROMOTED_FROM: 2, record.START_RUNG: 2})
    assert [t.number for t in record.configuration_chains([a, a1, a2])[0]] == [0, 2, 4]


def test_feasible_means_finished_at_the_top_rung_within_the_budget():
    ok = _trial(0, C, values=[0.8, 10.0], feasible=True)
    over = _trial(1, C, values=[0.0, 1e9], feasible=False)
    violated = _trial(2, C, values=[0.8, 10.0], constraints={"budget": 5.0})
    pruned = _trial(3, P)
    assert [record.is_feasible(t) for t in (ok, over, violated, pruned)] == [True, False, False, False]
    assert [record.is_over_budget(t) for t in (ok, over, pruned)] == [False, True, False]
