"""Pareto arithmetic for (score: maximise, params: minimise): fronts, non-dominated sorting,
2-D hypervolume against a fixed reference point, and the pick rules (``PICKS``) that choose a configuration
off the front."""

from __future__ import annotations

import math
from typing import Collection, Sequence

from .stats import non_inferior, t_quantile

Point = tuple[float, float]  # (score, params)
PICKS = ("smallest-tied", "best", "knee")  # the pick rules by name (study_front.pick_trial applies them)


def dominates(a: Point, b: Point) -> bool:
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def non_dominated_sort(points: Sequence[Point]) -> list[int]:
    """Front index of each point (0 = non-dominated). O(n^2): n is a few hundred at most."""
    n = len(points)
    rank = [-1] * n
    remaining = set(range(n))
    front = 0
    while remaining:
        current = {i for i in remaining if not any(dominates(points[j], points[i]) for j in remaining if j != i)}
        for i in current:
            rank[i] = front
        remaining -= current
        front += 1
    return rank


def front_indices(points: Sequence[Point]) -> list[int]:
    """Indices of the non-dominated points, sorted by params (then score, descending)."""
    ranks = non_dominated_sort(points)
    idx = [i for i, r in enumerate(ranks) if r == 0]
    return sorted(idx, key=lambda i: (points[i][1], -points[i][0]))


def promotion_order(points: Sequence[Point]) -> list[int]:
    """Indices from most to least deserving of promotion: by front, then by score, then fewer params."""
    ranks = non_dominated_sort(points)
    return sorted(range(len(points)), key=lambda i: (ranks[i], -points[i][0], points[i][1]))


def hypervolume(points: Sequence[Point], budget: float, score_floor: float = 0.0) -> float:
    """Area dominated by ``points`` inside [score_floor, +] x [0, budget], with params divided by the budget
    (so the reference point is (score_floor, budget) and a perfect front scores (1 - floor) at most)."""
    pts = [(s, p / budget) for s, p in points if s > score_floor and p <= budget and math.isfinite(s)]
    if not pts:
        return 0.0
    pts.sort(key=lambda x: (x[1], -x[0]))
    area, best = 0.0, score_floor
    for k, (s, p) in enumerate(pts):
        if s <= best:
            continue
        # this point raises the best score reachable with >= p params
        area += (s - best) * (1.0 - p)
        best = s
    return area


def pick_best(points: Sequence[Point]) -> int:
    """The highest score; ties go to fewer params."""
    return min(range(len(points)), key=lambda i: (-points[i][0], points[i][1]))


def pick_knee(points: Sequence[Point]) -> int:
    """The front point farthest from the line joining the front's two ends (normalised axes)."""
    front = front_indices(points)
    if len(front) <= 2:
        return pick_best(points)
    s = [points[i][0] for i in front]
    p = [points[i][1] for i in front]
    s_lo, s_hi, p_lo, p_hi = min(s), max(s), min(p), max(p)
    if s_hi == s_lo or p_hi == p_lo:
        return pick_best(points)
    norm = [((points[i][0] - s_lo) / (s_hi - s_lo), (points[i][1] - p_lo) / (p_hi - p_lo)) for i in front]
    (x0, y0), (x1, y1) = norm[0], norm[-1]
    length = math.hypot(x1 - x0, y1 - y0)
    dist = [abs((y1 - y0) * x - (x1 - x0) * y + x1 * y0 - y1 * x0) / length for x, y in norm]
    return front[max(range(len(front)), key=lambda k: dist[k])]


def tie_threshold(seed_std: float, best_seeds: int) -> float:
    """How far below the best's mean (over ``best_seeds`` seeds) one single-seed score may lie and still be
    tied with it: 1.96 standard deviations of that difference, when one run's seed noise is ``seed_std``."""
    return 1.96 * seed_std * math.sqrt(1.0 + 1.0 / max(1, best_seeds))


def recheck_threshold(seed_std: float, df: int, best_seeds: int, candidate_seeds: int, margin: float = 0.01) -> float:
    """How far below the best's mean one single-seed score may lie and still be worth rechecking over
    ``candidate_seeds`` seeds: where that score, were it the mean of its seeds, would pass the recheck
    (``tie_holds``: the 90% interval's lower bound above -margin, the noise's ``df`` plus the candidate's
    own). Further down, its mean is predicted below that bar (the more so as the front keeps lucky first seeds),
    so the check would likelier refute the tie than hold it, and its seeds are not trained. Never more lenient
    than ``tie_threshold``."""
    n = max(2, candidate_seeds)
    bar = margin - t_quantile(df + n - 1) * seed_std * math.sqrt(1.0 / n + 1.0 / max(1, best_seeds))
    return min(bar, tie_threshold(seed_std, best_seeds))


def tie_holds(candidate: Sequence[float], best: Sequence[float], margin: float = 0.01,
              noise: tuple[float, int] | None = None) -> bool:
    """Whether a candidate tied with the best on its first seed stays tied over its seeds: shown to be no
    worse than the best by more than ``margin`` (``stats.non_inferior``: the 90% interval of the difference
    of means, the seed noise pooled, lies above -margin). An inconclusive comparison is no tie. The
    candidate's single seed decides nothing yet, so it holds until its seeds are trained; the best may stay
    at one run where the set-up's ``noise`` (sd, df) is known from other runs (the cached baseline seeds)."""
    held = non_inferior(candidate, best, margin, noise=noise)
    return True if held is None else held


def tied_with_best(points: Sequence[Point], best: int, best_mean: float, threshold: float,
                   refuted: Collection[int] = ()) -> list[int]:
    """Front indices whose score is within ``threshold`` of the best's mean (the best itself always), less
    those whose tie did not hold over their seeds (``refuted``)."""
    return [i for i in front_indices(points)
            if i == best or (points[i][0] >= best_mean - threshold and i not in refuted)]


def pick_smallest_tied(points: Sequence[Point], best: int, best_mean: float, threshold: float,
                       refuted: Collection[int] = ()) -> int:
    """The front point with the fewest params among those tied with the best."""
    return min(tied_with_best(points, best, best_mean, threshold, refuted), key=lambda i: (points[i][1], -points[i][0]))
