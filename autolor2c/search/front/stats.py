"""Comparisons by name: one configuration against another over seeds is *higher*, *lower*, *level* (an
equivalence test within a practical margin) or *inconclusive*, and then how many seeds a side would decide it.

The difference of means gets a two-sided 90% t interval with the seed noise pooled over both sides (a side
with one run borrows the other's noise). Its lower bound above 0 is a one-sided 5% test that A is higher;
the whole interval inside (-margin, +margin) is Schuirmann's two one-sided tests at 5% (TOST), the standard
equivalence test. Nothing else is a verdict: "within the noise" only says that nothing was seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

CONFIDENCE = 0.90          # two-sided; each one-sided test at 5%
# What a user would call the same model: one point of the metric x 100 (accuracy, F1, MCC, Pearson,
# Spearman). A metric not listed gets the same.
PRACTICAL_MARGIN = {"accuracy": 0.01, "f1": 0.01, "mcc": 0.01, "pearson": 0.01, "spearmanr": 0.01}
MAX_SEEDS = 200            # "more than this many" seeds a side is reported as out of reach
HEAD_GAIN_SDS = 3.0        # training must add at least this many seed sds over the head alone to rank anything


def practical_margin(metric: str) -> float:
    return PRACTICAL_MARGIN.get(metric, 0.01)


def _mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)


Noise = tuple[float, int]   # (sd, degrees of freedom) measured on other runs of the same set-up


def pooled_sd(*sides: Sequence[float], noise: Noise | None = None) -> tuple[float | None, int]:
    """The seed standard deviation pooled over the sides with two runs or more (and ``noise``, the spread
    measured on other configurations of the same set-up), and its degrees of freedom."""
    ss, df = (noise[0] ** 2 * noise[1], noise[1]) if noise else (0.0, 0)
    for xs in sides:
        if len(xs) >= 2:
            m = _mean(xs)
            ss += math.fsum((x - m) ** 2 for x in xs)
            df += len(xs) - 1
    return (math.sqrt(ss / df), df) if df else (None, 0)


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """The t quantile of a two-sided ``confidence`` interval with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2, df))


@dataclass(frozen=True)
class Comparison:
    """A's mean minus B's over seeds, its confidence interval and what it shows."""
    verdict: str                   # "higher" | "lower" | "level" | "inconclusive"
    diff: float
    low: float | None              # the interval (None: no seed noise measured on either side)
    high: float | None
    margin: float
    sd: float | None
    n_a: int
    n_b: int
    seeds_to_decide: int | None    # per side, at the measured diff and sd (None: out of reach or unknown)

    def interval(self) -> str:
        if self.low is None:
            return "no seed noise measured"
        return f"{CONFIDENCE:.0%} CI {self.low:+.4f} to {self.high:+.4f}, margin ±{self.margin:g}"

    def decide_note(self) -> str:
        """What would decide an inconclusive comparison, in a few words."""
        if self.sd is None:
            return "two seeds or more a side would measure the noise"
        if self.seeds_to_decide is None:
            return f"more than {MAX_SEEDS} seeds a side would be needed at the measured noise (sd {self.sd:.4f})"
        return f"about {self.seeds_to_decide} seeds a side would decide it at the measured noise (sd {self.sd:.4f})"


def _decides(diff: float, half: float, margin: float) -> bool:
    return diff - half > 0 or diff + half < 0 or (diff - half > -margin and diff + half < margin)


def seeds_to_decide(diff: float, sd: float | None, margin: float, confidence: float = CONFIDENCE) -> int | None:
    """The fewest seeds a side (equal sides) whose interval, at this diff and sd, would be higher, lower or level."""
    if sd is None:
        return None
    if sd == 0:
        return 2
    for n in range(2, MAX_SEEDS + 1):
        if _decides(diff, t_quantile(2 * n - 2, confidence) * sd * math.sqrt(2 / n), margin):
            return n
    return None


def compare(a: Sequence[float], b: Sequence[float], margin: float, confidence: float = CONFIDENCE,
            noise: Noise | None = None) -> Comparison:
    """A against B over their seeds (see the module's doc for the rule); ``noise`` (sd, df), measured on other
    configurations of the same set-up, is pooled with the sides' own spread."""
    if not a or not b:
        raise ValueError("each side needs one run at least")
    diff = _mean(a) - _mean(b)
    sd, df = pooled_sd(a, b, noise=noise)
    if sd is None:
        return Comparison("inconclusive", diff, None, None, margin, None, len(a), len(b), None)
    half = t_quantile(df, confidence) * sd * math.sqrt(1 / len(a) + 1 / len(b))
    low, high = diff - half, diff + half
    if low > 0:
        verdict = "higher"
    elif high < 0:
        verdict = "lower"
    elif low > -margin and high < margin:
        verdict = "level"
    else:
        verdict = "inconclusive"
    need = None if verdict != "inconclusive" else seeds_to_decide(diff, sd, margin, confidence)
    return Comparison(verdict, diff, low, high, margin, sd, len(a), len(b), need)


def non_inferior(a: Sequence[float], b: Sequence[float], margin: float, confidence: float = CONFIDENCE,
                 noise: Noise | None = None) -> bool | None:
    """Whether A is shown to be no worse than B by more than ``margin`` (the interval's lower bound above
    -margin: level or higher). None while A has one run, or B has one and no ``noise`` is known: undecided."""
    c = compare(a, b, margin, confidence, noise)
    if c.low is None or len(a) < 2 or (len(b) < 2 and noise is None):
        return None
    return c.low > -margin


def training_adds_enough(trained: Sequence[float], head: Sequence[float] | float, sd: float | None) -> bool | None:
    """Whether the best trained mean beats the head alone by at least ``HEAD_GAIN_SDS`` seed sds (None: no sd)."""
    if sd is None or not trained:
        return None
    head_mean = head if isinstance(head, (int, float)) else _mean(head)
    return _mean(trained) - head_mean >= HEAD_GAIN_SDS * sd
