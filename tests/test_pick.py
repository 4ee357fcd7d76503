"""The pick and the verdict (pareto.py, report.py): the smallest configuration tied with the best within the
measured seed noise, the best baseline chosen on the selection split, and the dominance rule."""

from __future__ import annotations

import random
import statistics

import pytest

from autolor2c.search.pareto import pick_best, pick_smallest_tied, tie_threshold, tied_with_best
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
