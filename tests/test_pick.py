"""The pick and the verdict (pareto.py, report.py): the smallest configuration tied with the best within the
measured seed noise, the best baseline chosen on the selection split, and the dominance rule."""

from __future__ import annotations

import random
import statistics

import pytest

import optuna

from autolor2c.search import record
from autolor2c.search.front import pick_trial, record_seed_noise, refuted_ties, \
    selection_over_seeds, tied_with_the_best
from autolor2c.search.pareto import pick_best, pick_smallest_tied, tie_holds, tie_threshold, tied_with_best
from autolor2c.search.report import best_baseline, verdict


def test_smallest_tied_on_a_synthetic_front_with_known_noise():
    # true scores saturate with params; each observed score is one seed of noise sd 0.005
    rng = random.Random(0)
    sd = 0.005
    params = [2_000, 5_000, 10_000, 20_000, 40_000, 80_000]
    true = [0.80, 0.84, 0.868, 0.872, 0.874, 0.875]
    picked_true = []
    for _ in range(200):
        pts = [(t + rng.gauss(0, sd), p) for t, p in zip(true, params)]
        best = pick_best(pts)
        seeds = [true[best] + rng.gauss(0, sd) for _ in range(3)]
        thr = tie_threshold(statistics.stdev(seeds), 3)
        i = pick_smallest_tied(pts, best, statistics.fmean(seeds), thr)
        assert pts[i][1] <= pts[best][1]
        assert i in tied_with_best(pts, best, statistics.fmean(seeds), thr)
        picked_true.append(true[i])
    # it gives up little (the true gap to the best is small) and never takes the clearly worse small points
    assert statistics.fmean(picked_true) > max(true) - 0.01
    assert min(picked_true) >= 0.84
    # with no noise nothing else is tied: the rule is the best
    pts = [(s, p) for s, p in zip(true, params)]
    assert pick_smallest_tied(pts, pick_best(pts), max(true), 0.0) == pick_best(pts)


def test_tie_threshold_grows_with_noise_and_shrinks_with_seeds():
    assert tie_threshold(0.01, 3) == pytest.approx(1.96 * 0.01 * (1 + 1 / 3) ** 0.5)
    assert tie_threshold(0.01, 9) < tie_threshold(0.01, 3) < tie_threshold(0.02, 3)


def test_tie_holds_is_the_one_standard_error_rule():
    best = [0.7820, 0.7575, 0.7520]          # MRPC, the best trial's three seeds
    lucky = [0.7575, 0.7248, 0.7357]         # the smallest tied trial: its first seed was its luckiest
    assert not tie_holds(lucky, best)
    assert tie_holds(best, best) and tie_holds([0.70], best) and tie_holds(lucky, [0.80])  # one seed: undecided
    # the boundary is one standard error of the difference of means, the seed noise pooled over both
    c, b = [0.70, 0.72, 0.74], [0.76, 0.78, 0.80]
    pooled = (sum((x - 0.72) ** 2 for x in c) + sum((x - 0.78) ** 2 for x in b)) / 4
    se = (pooled * (2 / 3)) ** 0.5
    shift = 0.78 - se - 0.72
    assert tie_holds([x + shift + 1e-9 for x in c], b) and not tie_holds([x + shift - 1e-6 for x in c], b)


def test_rechecking_the_tie_over_seeds_ships_better_models_under_large_noise():
    # a small selection split (MRPC-like): seed noise sd 0.016 against true gaps of 1-3 points
    rng = random.Random(1)
    sd, params = 0.016, [2_000, 6_000, 18_000, 37_000]
    true = [0.730, 0.745, 0.760, 0.765]
    once, rechecked, smaller = [], [], 0
    for _ in range(400):
        pts = [(t + rng.gauss(0, sd), p) for t, p in zip(true, params)]
        best = pick_best(pts)
        best_seeds = [pts[best][0]] + [true[best] + rng.gauss(0, sd) for _ in range(2)]
        mean, thr = statistics.fmean(best_seeds), tie_threshold(statistics.stdev(best_seeds), 3)
        once.append(true[pick_smallest_tied(pts, best, mean, thr)])
        refuted: set[int] = set()
        while (i := pick_smallest_tied(pts, best, mean, thr, refuted)) != best:
            seeds = [pts[i][0]] + [true[i] + rng.gauss(0, sd) for _ in range(2)]
            if tie_holds(seeds, best_seeds):
                break
            refuted.add(i)
        rechecked.append(true[i])
        smaller += params[i] < params[best]
    assert statistics.fmean(rechecked) > statistics.fmean(once) + 0.004
    assert smaller > 40  # it still ships a smaller configuration where the tie holds


def _study_with_front(scores_params):
    study = optuna.create_study(directions=["maximize", "minimize"])
    for score, params in scores_params:
        study.add_trial(optuna.trial.create_trial(values=[score, params], user_attrs={record.FEASIBLE: True}))
    return study


def _seeds(study, number, scores):
    runs = dict(study.user_attrs.get(record.SEED_RUNS, {}))
    runs[str(number)] = [{"seed": k + 1, "selection": s} for k, s in enumerate(scores)]
    study.set_user_attr(record.SEED_RUNS, runs)


def test_a_refuted_tie_hands_the_pick_to_the_next_candidate_then_the_best():
    study = _study_with_front([(0.7575, 2_304), (0.7602, 5_760), (0.7820, 18_432), (0.70, 40_000), (0.70, 1_000)])
    _seeds(study, 4, [0.69, 0.70])  # on the front but never tied: its seeds refute nothing
    _seeds(study, 2, [0.7575, 0.7520])
    record_seed_noise(study, 2, [0.7820, 0.7575, 0.7520])
    assert study.user_attrs[record.SEED_NOISE]["trial"] == 2
    assert pick_trial(study, "smallest-tied").number == 0          # tied on its first seed
    _seeds(study, 0, [0.7248, 0.7357])                               # its own seeds refute it
    assert refuted_ties(study) == {0}
    assert pick_trial(study, "smallest-tied").number == 1
    assert {t.number for t in tied_with_the_best(study)} == {1, 2}
    _seeds(study, 1, [0.7700, 0.7650])                               # this one holds: it is the pick
    assert pick_trial(study, "smallest-tied").number == 1
    _seeds(study, 1, [0.7300, 0.7250])                               # had it not, the best is
    assert pick_trial(study, "smallest-tied").number == 2
    assert pick_trial(study, "best").number == 2


def test_the_search_trains_each_candidates_seeds_until_a_tie_holds(monkeypatch):
    from types import SimpleNamespace

    from autolor2c.search import pipeline
    from autolor2c.search import retrain as retrain_mod

    study = _study_with_front([(0.7575, 2_304), (0.7602, 5_760), (0.7820, 18_432)])
    later = {0: [0.7248, 0.7357], 1: [0.7700, 0.7650], 2: [0.7575, 0.7520]}  # each trial's seeds 1 and 2
    trained = []

    def fake_train_seeds(study, ctx, t, seeds, progress=True, role=""):  # records seeds as the real one does
        if len(record.extra_seed_runs(study, t.number)) + 1 < seeds:
            trained.append(t.number)
            _seeds(study, t.number, later[t.number][:seeds - 1])
        scores = selection_over_seeds(study, t)[:seeds]
        return {"trial": t.number, "seeds": len(scores), "selection_mean": statistics.fmean(scores),
                "runs": [{"selection": x} for x in scores]}

    monkeypatch.setattr(retrain_mod, "train_seeds", fake_train_seeds)
    ctx = SimpleNamespace(task=SimpleNamespace(primary_metric="accuracy"))
    chosen = pipeline.pick_over_seeds(study, ctx, "smallest-tied", 3)
    assert trained == [2, 0, 1]  # the best (its seeds are the noise), then the candidates, smallest first
    assert refuted_ties(study) == {0} and chosen.picked.number == 1 and chosen.best["trial"] == 2
    assert chosen.pick["trial"] == 1 and chosen.noise["trial"] == 2
    trained.clear()  # asked again, nothing trains: every seed is on record, and the pick is the same
    assert pipeline.pick_over_seeds(study, ctx, "smallest-tied", 3).picked.number == 1 and trained == []
    assert pipeline.pick_over_seeds(study, ctx, "best", 3).picked.number == 2 and trained == []


def test_a_builtin_baseline_uses_every_seed_on_record(monkeypatch):
    from autolor2c.search import pipeline
    from autolor2c.search import retrain as retrain_mod

    study = optuna.create_study(directions=["maximize", "minimize"])
    for name in ("lor2c", "sharelor2c"):
        study.add_trial(optuna.trial.create_trial(values=[0.84, 1_000], user_attrs={record.FEASIBLE: True,
                                                                                    record.BUILTIN: name}))
    _seeds(study, 0, [0.838, 0.835])  # a refuted pick: its seeds were trained by the pick rule
    asked = {}
    monkeypatch.setattr(retrain_mod, "train_seeds", lambda st, ctx, t, seeds, progress=True, role="": asked.update(
        {t.number: seeds}) or {"seeds": seeds})
    rows = pipeline.builtin_baselines(study, None, 1, False)
    assert asked == {0: 3, 1: 1} and [r["config"] for r in rows] == ["lor2c", "sharelor2c"]


def _b(config, sel, dev, params, seeds=3, dev_std=0.004):
    return {"config": config, "source": "x", "selection_mean": sel, "selection_std": 0.004, "dev_mean": dev,
            "dev_std": dev_std, "params": params, "seeds": seeds}


def test_best_baseline_is_chosen_on_the_selection_split_never_on_dev():
    baselines = [_b("lor2c", 0.88, 0.90, 36_864), _b("sharelor2c", 0.89, 0.86, 21_504), _b("head-only", 0.95, 0.95, 0)]
    assert best_baseline(baselines)["config"] == "sharelor2c"  # higher selection, lower dev; the head is not a rival


def test_verdict_rule():
    base = [_b("sharelor2c", 0.89, 0.870, 20_000)]
    pick = {**_b("x", 0.9, 0.875, 20_000), "trial": 5}
    assert verdict(pick, base, "accuracy", 0.004)[0] is True  # higher at no more params
    assert verdict({**pick, "params": 20_001}, base, "accuracy", 0.004)[0] is False
    level = {**pick, "dev_mean": 0.868, "params": 14_000}  # within noise at 0.7x its params
    assert verdict(level, base, "accuracy", 0.004)[0] is True
    assert verdict({**level, "params": 14_001}, base, "accuracy", 0.004)[0] is False
    assert verdict({**level, "dev_mean": 0.850}, base, "accuracy", 0.004)[0] is False  # outside the noise
    assert verdict({**pick, "builtin": "lor2c"}, base, "accuracy", 0.004)[0] is False  # a built-in is hand-setting
    ok, sentence = verdict(pick, base, "accuracy", 0.004)
    assert sentence.count(".") >= 1 and "sharelor2c" in sentence and "\n" not in sentence
