"""The search's honesty and learning: the selection split, one set of training arguments for trials and
retrains, a retrain that keeps the trial's structure, and a sampler that learns from pruned trials."""

from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pytest
import torch
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from autolor2c.lor2c import LoR2CConfig, ModelShape, get_lor2c_model
from autolor2c.search.fidelity import RUNGS_ATTR
from autolor2c.search.retrain import fixed_structure_spec
from autolor2c.search.sampler import RungAwareSampler
from autolor2c.search.space import TrialPlan
from autolor2c.search.study import SearchSettings
from autolor2c.tasks import load_task_data, trivial_score
from autolor2c.train import AdapterSpec, TrainArgs, count_adapter_params, training_args
from autolor2c.train.adapters import adapter_structure

from conftest import tiny_model


# --------------------------------------------------------------------------------------------------
# The selection split
# --------------------------------------------------------------------------------------------------
def test_selection_split_is_held_out_of_train_fixed_and_never_the_dev_set(glue_dir):
    a = load_task_data("sst2", data_dir=glue_dir, selection_fraction=0.1, selection_cap=2000)
    b = load_task_data("sst2", data_dir=glue_dir, selection_fraction=0.1, selection_cap=2000, seed=7,
                       max_train_samples=500)
    plain = load_task_data("sst2", data_dir=glue_dir)
    assert len(a["selection"]) == 2000 and len(a["train"]) == 67349 - 2000
    # the same rows whatever the trial's seed or training-set size
    assert a["selection"]["sentence"] == b["selection"]["sentence"]
    # disjoint from the rows trained on (by position in the file: duplicates of a sentence exist in SST-2)
    sel = set(a["selection"]["idx"]) if "idx" in a["selection"].column_names else None
    key = lambda ds: {(s, l) for s, l in zip(ds["sentence"], ds["label"])}  # noqa: E731
    assert len(a["selection"]) + len(a["train"]) == len(plain["train"])
    assert key(a["selection"]) | key(a["train"]) == key(plain["train"])
    assert sel is None or not sel & set(a["train"]["idx"])
    # the dev set is untouched and is not the selection split
    assert a["validation"]["sentence"] == plain["validation"]["sentence"]
    assert not key(a["selection"]) & key(a["validation"]) - key(a["train"])


def test_trivial_score_is_the_majority_class_or_zero():
    assert trivial_score("sst2", [1, 1, 0], [1, 0, 0, 0]) == 0.25
    assert trivial_score("cola", [1, 1, 0], [1, 0, 0]) == 0.0  # MCC of a constant is 0
    assert trivial_score("stsb", [1.0, 2.0], [0.5, 3.0]) == 0.0  # correlation with a constant is 0


# --------------------------------------------------------------------------------------------------
# One function for training arguments
# --------------------------------------------------------------------------------------------------
def test_trials_and_retrains_get_the_same_training_arguments_for_a_plan():
    s = SearchSettings(task="sst2", max_train_samples=4000, selection_fraction=0.1, backbone_dropout=0.0)
    plan_train = {"learning_rate": 3e-3, "weight_decay": 0.05, "warmup_ratio": 0.1, "batch_size": 16}
    trial = s.train_args(plan_train, stage="trial", n_full=4000, fraction=1.0)
    retrain = s.train_args(plan_train, stage="retrain", seed=0)
    differ = {f.name for f in dataclasses.fields(TrainArgs) if getattr(trial, f.name) != getattr(retrain, f.name)}
    # only what makes a retrain a retrain: all the data, and the dev set scored at the end
    assert differ == {"max_train_samples", "score_dev"}
    for k, v in plan_train.items():  # every training key of the plan reaches both (the old retrain dropped some)
        assert getattr(trial, k) == getattr(retrain, k) == v
    assert trial.selection_fraction == retrain.selection_fraction == 0.1
    # a low rung is the same run on a third of the rows and a third of the minimum steps
    rung = s.train_args(plan_train, stage="trial", n_full=4000, fraction=1 / 3)
    assert rung.max_train_samples == 1333 and rung.min_steps == 100
    # settings left at None take the library's defaults
    assert training_args({}).learning_rate == TrainArgs().learning_rate
    assert training_args({}, epochs=None).epochs == TrainArgs().epochs


# --------------------------------------------------------------------------------------------------
# The retrain keeps the trial's structure
# --------------------------------------------------------------------------------------------------
class _Trial:
    def __init__(self, plan, final_structure, values):
        self.number, self.values = 3, values
        self.user_attrs = {"plan": plan.to_dict(), "final_structure": final_structure}


@pytest.mark.parametrize("share_a", [False, True])
def test_retrain_spec_has_the_trained_structure_and_count(share_a):
    torch.manual_seed(0)
    cfg = LoR2CConfig(spans=None, rank=4, merge_count=2, inject_count=1, share_a=share_a, max_merge_span=3)
    base = tiny_model("bert", layers=6)
    model = get_lor2c_model(base, LoR2CConfig.from_dict(cfg.to_dict()))
    for b in model.bypasses:  # different spectra, so the choices are not ties
        torch.nn.init.normal_(b.B, std=float(torch.rand(1)) + 0.1)
    model.merge(), model.inject(), model.merge()
    spec = AdapterSpec("lor2c", lor2c=cfg)
    final = adapter_structure(model, spec)
    trained = model.num_adapter_params()
    shape = ModelShape.from_model(tiny_model("bert", layers=6), cfg)
    assert count_adapter_params(spec, shape)["final"] == trained  # planned == trained
    plan = TrialPlan("lor2c", cfg, {}, 6, "t", {})
    fixed = fixed_structure_spec(_Trial(plan, final, [0.8, float(trained)]))
    assert fixed.lor2c.spans == final["spans"] and fixed.lor2c.injected == final["injected"]
    assert fixed.lor2c.merge_count == fixed.lor2c.inject_count == 0
    again = get_lor2c_model(tiny_model("bert", layers=6), fixed.lor2c)
    assert again.spans == model.spans and again.num_adapter_params() == trained
    assert count_adapter_params(fixed, shape) == {"initial": trained, "final": trained, "peak": trained}


# --------------------------------------------------------------------------------------------------
# The sampler learns from pruned trials
# --------------------------------------------------------------------------------------------------
def _paused_study(n: int, with_rungs: bool) -> optuna.Study:
    """n configurations of x in [0, 1], all paused at rung 0 (PRUNED) with score 1 - |x - 0.8|."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    rng = np.random.default_rng(0)
    for x in rng.uniform(0, 1, n):
        rungs = [{"rung": 0, "score": 1 - abs(x - 0.8), "params": 1000.0}] if with_rungs else []
        study.add_trial(create_trial(state=TrialState.PRUNED, params={"x": float(x)},
                                     distributions={"x": FloatDistribution(0, 1)},
                                     user_attrs={RUNGS_ATTR: rungs, "trained": True, "feasible": True},
                                     constraints={"budget": -1.0}))
    return study


def _suggestions(study: optuna.Study, k: int = 30) -> np.ndarray:
    xs = []
    for _ in range(k):
        t = study.ask()
        xs.append(t.suggest_float("x", 0, 1))
        study.tell(t, state=TrialState.FAIL)  # not a result: the view stays the 40 paused trials
    return np.array(xs)


def test_sampler_learns_from_the_rung_scores_of_pruned_trials():
    informed = _paused_study(40, with_rungs=True)
    informed.sampler = RungAwareSampler(budget=10_000, top_rung=1, seed=0, n_startup_trials=8)
    xs = _suggestions(informed)
    # TPE drew from around the best rung scores (x near 0.8), not uniformly (mean 0.5, 43% within 0.15)
    assert np.mean(np.abs(xs - 0.8) < 0.15) > 0.7, xs
    # the same trials without rung scores teach it nothing about x
    blind = _paused_study(40, with_rungs=False)
    blind.sampler = RungAwareSampler(budget=10_000, top_rung=1, seed=0, n_startup_trials=8)
    assert np.mean(np.abs(_suggestions(blind) - 0.8) < 0.15) < 0.6


def test_view_has_no_made_up_scores_and_start_up_counts_trained_configurations():
    study = _paused_study(5, with_rungs=True)
    study.add_trial(create_trial(state=TrialState.PRUNED, params={"x": 0.5}, distributions={"x": FloatDistribution(0, 1)},
                                 user_attrs={"trained": False, "feasible": False}, constraints={"budget": 500.0}))
    sampler = RungAwareSampler(budget=10_000, top_rung=1, seed=0, n_startup_trials=8)
    assert sampler.n_trained(study) == 5  # the over-budget one is not a trained configuration
    view = sampler.build_view(study)
    over = [t for t in view.trials if t.constraints.get("budget", 0) > 0]
    assert len(over) == 1  # TPE keeps infeasible trials in their own group: their value is never ranked
    paused = [t for t in view.trials if t.state == TrialState.PRUNED]
    assert len(paused) == 5 and all(set(t.intermediate_values) == {0} for t in paused)
