"""The record: every user-attribute key a search writes on an Optuna trial or study, and the functions that
read them: rung records, configuration chains, trained, feasible, the study's pick. Other modules call these
instead of spelling the keys (as Optuna's successive-halving pruner keeps each of its keys behind one function)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from optuna.trial import FrozenTrial, TrialState

PLAN = "plan"                      # the TrialPlan the trial trained (plan.TrialPlan.to_dict)
PLANNED_PARAMS = "planned_params"  # analytic counts before training: initial, peak, final
FEASIBLE = "feasible"              # False: over budget, never trained
TRAINED = "trained"                # True once training started
RUNGS = "rungs"                    # one record per rung this configuration trained at
PROMOTED_FROM = "promoted_from"    # the trial whose configuration this one continues
START_RUNG = "start_rung"          # the rung this trial trains at
BUILTIN = "builtin"                # the built-in configuration this trial is (enqueued first)
KEPT_RUN = "kept_run"              # a built-in trial's run taken from an earlier search's (its cache file), untrained
ADAPTER_DIR = "adapter_dir"        # where a top-rung trial saved its trained adapter
DEV_SCORES = "dev_scores"          # a top-rung trial's dev-set scores (chooses nothing)
FAIL_REASON = "fail_reason"
FAIL_TRACEBACK = "fail_traceback"
COST_S = "cost_s"                  # wall seconds the trial trained
CPU_S = "cpu_s"
GPU_S = "gpu_s"
FINAL_STRUCTURE = "final_structure"  # the adapter's structure after training (merges and injections done)
HISTORY = "history"                # the trial's evaluation history, compacted
SCORES = "scores"                  # every metric on the selection split
N_TRAIN = "n_train"                # training rows the trial saw
STOPPED_AT_RUNG = "stopped_at_rung"
TRAIN_ARGS = "train_args"          # the TrainArgs of the run (``autolor2c train --config`` reproduces it)
RETRY_OF = "retry_of"              # the interrupted trial this one re-runs
SURPLUS = "surplus"                # True: decided after the study had its trials (several workers): trains nothing
WARM_START_FROM = "warm_start_from"  # "study#trial" a warm start copied the configuration from
DONE_STATES = (TrialState.COMPLETE, TrialState.PRUNED)

# On the study
IDENTITY = "identity"              # SearchSettings.identity(): what a resumed search must match
MODEL_ARG = "model_arg"            # the --model as given (a hub id or folder)
DATA_DIR = "data_dir"              # the GLUE folder it read (None: the hub)
SPACE = "space"                    # the search space's name
SPACE_PATH = "space_path"          # the search space file
BACKBONE_PARAMS = "backbone_params"
FULL_STEPS = "full_steps"          # the top rung's optimiser steps
RUNG_FRACTIONS = "rungs"           # each rung's share of the full run
ARTIFACTS_DIR = "artifacts_dir"    # where its report, charts and adapters are written
BUDGET_PARAMS = "budget_params"    # the budget in parameters
TRIVIAL_SCORE = "trivial_score"    # the input-blind score: {"selection", "dev"}
HV_REFERENCE = "hv_reference"      # the hypervolume's score reference: {"score", "name"} (the head alone)
COST = "cost"                      # front.cost_totals at the last trial
SEED_NOISE = "seed_noise"          # the best configuration's seed noise (front.record_seed_noise)
SEED_RUNS = "seed_runs"            # trial number -> the runs of its extra seeds (seed 1 on)
PICK = "retrain"                   # the pick over its seeds (retrain.summary without its runs)
BASELINES = "baselines"            # the baselines over their seeds, without their runs
ONESHOT = "oneshot"                # the one-shot rung's super-adapter: {"folder", "cached", "wall_s", "cpu_s", "steps"}
VERDICT = "verdict"                # the report's verdict: {"sentence", "dominates", "comparison"} (report.verdict)
STAGE_WALL = "stage_wall_s"        # the last session's wall seconds by stage: {"trials", "baselines" (if trained; what
                                   # they added after the trials), "baselines_beside_trials" (while the last trials
                                   # ran), "seeds"}


def rung_records(t: FrozenTrial, rung: int | None = None) -> list[dict[str, Any]]:
    """The rung records ``t`` measured itself (copies of a source trial's earlier rungs skipped)."""
    return [r for r in t.user_attrs.get(RUNGS, []) if r.get("from_trial") is None and r.get("score") is not None
            and (rung is None or int(r.get("rung", -1)) == rung)]


def is_trained(t: FrozenTrial) -> bool:
    return bool(t.user_attrs.get(TRAINED))


def is_over_budget(t: FrozenTrial) -> bool:
    """Its planned parameters exceed the budget: it was never trained."""
    return t.user_attrs.get(FEASIBLE) is False


def is_feasible(t: FrozenTrial) -> bool:
    """Finished at the top rung, within the budget: a point of the front."""
    return t.state == TrialState.COMPLETE and not is_over_budget(t) and all(v <= 0 for v in t.constraints.values())


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


def cost_s(t: FrozenTrial) -> float:
    return float(t.user_attrs.get(COST_S, 0.0))


def final_structure(t: FrozenTrial) -> dict[str, Any] | None:
    return t.user_attrs.get(FINAL_STRUCTURE)


def train_args(t: FrozenTrial) -> dict[str, Any] | None:
    return t.user_attrs.get(TRAIN_ARGS)


def plan(t: FrozenTrial) -> dict[str, Any]:
    return t.user_attrs.get(PLAN) or {}


def planned_params(t: FrozenTrial) -> dict[str, Any]:
    return t.user_attrs.get(PLANNED_PARAMS) or {}


def configuration_chains(trials: Sequence[FrozenTrial]) -> dict[int, list[FrozenTrial]]:
    """Trials grouped by configuration: a trial and the promotions that continued it, keyed by the first."""
    by_number = {t.number: t for t in trials}
    chains: dict[int, list[FrozenTrial]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        root, seen = t, set()
        while promoted_from(root) is not None and root.number not in seen:
            seen.add(root.number)
            src = by_number.get(promoted_from(root))
            if src is None:
                break
            root = src
        chains.setdefault(root.number, []).append(t)
    return chains


def chain_rungs(chain: Sequence[FrozenTrial]) -> dict[int, tuple[float, float]]:
    """Rung -> (score, params) measured by a configuration's trials."""
    return {int(r["rung"]): (float(r["score"]), float(r["params"])) for t in chain for r in rung_records(t)}


def trained_configurations(trials: Sequence[FrozenTrial]) -> int:
    """Configurations trained (what ``--trials`` counts): a promotion continues one, an over-budget one is not
    trained. ``trials``: the study's finished (COMPLETE or PRUNED) trials."""
    return sum(1 for chain in configuration_chains(trials).values() if is_trained(chain[0]))


def extra_seed_runs(study: Any, number: int) -> list[dict[str, Any]]:
    """The runs of trial ``number``'s configuration at seeds 1 on (the trial itself is seed 0)."""
    return sorted(study.user_attrs.get(SEED_RUNS, {}).get(str(number), []), key=lambda r: r["seed"])


def own_pick(study: Any) -> int | None:
    """The trial number the search picked (its adapter/ and best_config.yaml), or None before it picked."""
    v = study.user_attrs.get(PICK, {}).get("trial")
    return None if v is None else int(v)
