"""Which merges and injections a LoR2C config can carry out, decided from its spans alone.

A merge joins two bypasses only when the upper one starts on the layer right after the lower one ends
(the reference code's rule) and the joined span is at most ``max_merge_span`` layers long. An injection
replaces a single-layer bypass (on a layer not already injected) and leaves a gap there. Which pair or
bypass is picked depends on the spectrum scores, known only during training; so the counts a config can
promise are those that succeed whatever is picked and in whatever order merges and injections come.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable

from .config import LoR2CConfig

# A span as the game sees it: its length, and whether an injection may take it.
_Span = tuple[int, bool]
_Run = tuple[_Span, ...]      # spans on consecutive layers, lower first


def can_merge(lower: list[int], upper: list[int], max_merge_span: int) -> bool:
    """The merge rule: ``upper`` starts right after ``lower`` ends, and the joint span fits the cap."""
    return upper[0] == lower[1] + 1 and upper[1] - lower[0] + 1 <= max_merge_span


def guaranteed_events(config: LoR2CConfig, num_layers: int) -> tuple[int, int]:
    """(merges, injections): the most, up to ``config.merge_count`` / ``config.inject_count``, that
    succeed along every choice of pair/bypass and every interleaving of the two operations.

    Merges are settled first (the most that always succeed with no injection), then injections (the
    most that always succeed alongside those merges). Fewer operations of either kind never fail where
    more succeeded, so both counts are the largest possible in that order.

    Why two one-sided checks are exact: a merge and an injection that both succeed commute (an injected
    bypass is a single layer no merge before it touched, and taking it away changes no other pair), so
    any run of operations up to a failure can be reordered without changing the state it fails in:
    a failing merge can be met with its injections done first, a failing injection with its merges
    done first.
    """
    runs = _runs(config, num_layers)
    cap = config.max_merge_span
    merges = min(config.merge_count, sum(_fewest_merges(run, cap) for run in runs))
    singles = sum(injectable for run in runs for _, injectable in run)
    injects = 0
    while injects < config.inject_count:
        nxt = injects + 1
        # a merge must not fail after any nxt injections; an injection must find a single after any merges
        if (_fewest_merges_after_injections(runs, cap, nxt) < merges
                or singles - _most_singles_merged(runs, cap, merges) < nxt):
            break
        injects = nxt
    return merges, injects


def structure_limits(config: LoR2CConfig, num_layers: int) -> dict[str, int]:
    """The largest values of the structural fields this config can honour on ``num_layers`` layers:
    ``merge_count`` and ``inject_count`` (``guaranteed_events``) and, under the topk criterion,
    ``sfs_k`` (below the smallest bypass rank). A search space clamps what it samples to these."""
    merges, injects = guaranteed_events(config, num_layers)
    limits = {"merge_count": merges, "inject_count": injects}
    if config.merge_criterion == "topk":
        limits["sfs_k"] = (min(config.ranks) if config.ranks else config.rank) - 1
    return limits


# --------------------------------------------------------------------------------------------------
# Runs of bypasses on consecutive layers play apart: a merge never crosses a gap.
# --------------------------------------------------------------------------------------------------
def _runs(config: LoR2CConfig, num_layers: int) -> list[_Run]:
    blocked = set(config.injected)
    spans = config.resolved_spans(num_layers)
    runs: list[list[_Span]] = []
    for n, (first, last) in enumerate(spans):
        span = (last - first + 1, first == last and first not in blocked)
        if n and first == spans[n - 1][1] + 1:
            runs[-1].append(span)
        else:
            runs.append([span])
    return [tuple(r) for r in runs]


def _blocks(run: _Run, cap: int) -> list[tuple[int, int]]:
    """Every (start, end) of spans run[start:end] that merges may join into one span: one span, or
    several whose total length fits the cap (then their partial merges fit too, in any order)."""
    out = []
    for i in range(len(run)):
        total = 0
        for j in range(i, len(run)):
            total += run[j][0]
            if j > i and total > cap:
                break
            out.append((i, j + 1))
    return out


@lru_cache(maxsize=100_000)
def _fewest_merges(run: _Run, cap: int) -> int:
    """How many merges a run takes whatever pairs are picked: the fewest over every sequence of merges
    that ends with no pair left to merge.

    Such a sequence ends in a partition of the run into blocks (``_blocks``) where no two neighbouring
    blocks fit together, and every such partition is reachable; the fewest merges is the number of
    spans less the most blocks such a partition can have (a dynamic programme over the last block).
    """
    if len(run) < 2:
        return 0
    length = {(i, j): sum(sp[0] for sp in run[i:j]) for i, j in _blocks(run, cap)}
    most: dict[tuple[int, int], int] = {}  # blocks in the best partition of run[:j] whose last block is (i, j)
    for i, j in sorted(length, key=lambda b: b[1]):
        if i == 0:
            most[(i, j)] = 1
            continue
        before = [count for (h, e), count in most.items() if e == i and length[(h, e)] + length[(i, j)] > cap]
        if before:
            most[(i, j)] = max(before) + 1
    return len(run) - max(count for (_, e), count in most.items() if e == len(run))


@lru_cache(maxsize=100_000)
def _fewest_merges_removing(run: _Run, cap: int, removed: int) -> int | None:
    """The fewest guaranteed merges left in a run after injecting ``removed`` of its single-layer
    bypasses, over every choice of which (None: it has fewer than that)."""
    if not removed:
        return _fewest_merges(run, cap)
    options = []
    for p, (_, injectable) in enumerate(run):
        if injectable:
            for left_removed in range(removed):
                left = _fewest_merges_removing(run[:p], cap, left_removed)
                right = _fewest_merges_removing(run[p + 1:], cap, removed - 1 - left_removed)
                if left is not None and right is not None:
                    options.append(left + right)
    return min(options) if options else None


def _fewest_merges_after_injections(runs: list[_Run], cap: int, injects: int) -> int:
    """The fewest guaranteed merges after any ``injects`` injections (or fewer), over all runs."""
    return _combine(runs, injects, lambda run, k: _fewest_merges_removing(run, cap, k), min)


@lru_cache(maxsize=100_000)
def _singles_merged(run: _Run, cap: int) -> dict[int, int]:
    """merges -> the most injectable single-layer bypasses that many merges in this run can take."""
    best: dict[int, dict[int, int]] = {0: {0: 0}}   # end of the covered prefix -> merges -> singles taken
    for i, j in sorted(_blocks(run, cap)):
        if i not in best:
            continue
        merged = j - i - 1
        taken = sum(injectable for _, injectable in run[i:j]) if merged else 0
        at_end = best.setdefault(j, {})
        for merges, singles in best[i].items():
            k = merges + merged
            at_end[k] = max(at_end.get(k, -1), singles + taken)
    return best[len(run)]


def _most_singles_merged(runs: list[_Run], cap: int, merges: int) -> int:
    """The most injectable single-layer bypasses that ``merges`` merges (or fewer) can take."""
    return _combine(runs, merges, lambda run, k: _singles_merged(run, cap).get(k), max)


def _combine(runs: list[_Run], limit: int, per_run: Callable[[_Run, int], int | None], pick) -> int:
    """Spread up to ``limit`` operations over the runs, each run's share scored by ``per_run``; the
    ``pick`` (min or max) of the summed scores over every spread."""
    totals = {0: 0}  # operations spread so far -> picked sum
    for run in runs:
        nxt: dict[int, int] = {}
        for used, score in totals.items():
            for k in range(limit - used + 1):
                v = per_run(run, k)
                if v is not None:
                    total = score + v
                    nxt[used + k] = pick(nxt[used + k], total) if used + k in nxt else total
        totals = nxt
    return pick(totals.values())
