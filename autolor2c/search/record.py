"""The trial record: every user-attribute key a search writes on an Optuna trial, and the functions that
read them. Other modules call these instead of spelling the keys (as Optuna's successive-halving pruner
keeps each of its keys behind one function)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from optuna.trial import FrozenTrial, TrialState

PLAN = "plan"                      # the TrialPlan the trial trained (space.TrialPlan.to_dict)
PLANNED_PARAMS = "planned_params"  # analytic counts before training: initial, peak, final
FEASIBLE = "feasible"              # False: over budget, never trained
TRAINED = "trained"                # True once training started
RUNGS = "rungs"                    # one record per rung this configuration trained at
PROMOTED_FROM = "promoted_from"    # the trial whose configuration this one continues
START_RUNG = "start_rung"          # the rung this trial trains at
BUILTIN = "builtin"                # the built-in configuration this trial is (enqueued first)
ADAPTER_DIR = "adapter_dir"        # where a top-rung trial saved its trained adapter
DEV_SCORES = "dev_scores"          # a top-rung trial's dev-set scores (chooses nothing)
FAIL_REASON = "fail_reason"
COST_S = "cost_s"


def rung_records(t: FrozenTrial, rung: int | None = None) -> list[dict[str, Any]]:
    """The rung records ``t`` measured itself (copies of a source trial's earlier rungs skipped)."""
    return [r for r in t.user_attrs.get(RUNGS, []) if r.get("from_trial") is None and r.get("score") is not None
            and (rung is None or int(r.get("rung", -1)) == rung)]


def is_trained(t: FrozenTrial) -> bool:
    return bool(t.user_attrs.get(TRAINED))


def is_feasible(t: FrozenTrial) -> bool:
    """Finished at the top rung, within the budget: a point of the front."""
    return t.state == TrialState.COMPLETE and t.user_attrs.get(FEASIBLE, True) is not False and \
        all(v <= 0 for v in t.constraints.values())


def builtin_of(t: FrozenTrial) -> str | None:
    return t.user_attrs.get(BUILTIN)


def start_rung(t: Any) -> int:
    return int(t.user_attrs.get(START_RUNG, 0))


def promoted_from(t: Any) -> int | None:
    v = t.user_attrs.get(PROMOTED_FROM)
    return None if v is None else int(v)


def adapter_dir(t: FrozenTrial) -> Path | None:
    """The trial's own trained adapter folder, if it reached the top rung and saved one that still exists."""
    p = t.user_attrs.get(ADAPTER_DIR)
    return Path(p) if p and Path(p).is_dir() else None


def dev_score(t: FrozenTrial, metric: str) -> float | None:
    scores = t.user_attrs.get(DEV_SCORES) or {}
    return scores.get(metric)


def trial_folder(out: Path, number: int) -> Path:
    """Where trial ``number`` of a study whose artifacts live in ``out`` saves its model."""
    return out / "trials" / f"trial{number}"


def builtin_trials(trials: Iterable[FrozenTrial]) -> dict[str, FrozenTrial]:
    return {builtin_of(t): t for t in trials if builtin_of(t) and is_feasible(t)}
