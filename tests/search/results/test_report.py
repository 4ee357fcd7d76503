"""What the reports say agrees with itself (report.py, study.py): one hypervolume with a named reference in
`show` and report.md, importances only where they mean something, the hypervolume chart counted in
configurations, the dashboard note carrying the comparison and the verdict."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest

from autolor2c.cli import main
from autolor2c.search.fidelity import Fidelity
from autolor2c.search.results import IMPORTANCE_MIN_TRIALS, importances, write_artifacts
from autolor2c.search.front import hypervolume_history, study_hypervolume

BUDGET = 50_000


def _objective(trial: optuna.Trial):
    rank = trial.suggest_int("rank", 1, 8)
    span = trial.suggest_int("span_length", 1, 3)
    alpha = trial.suggest_float("alpha", 4.0, 64.0, log=True)
    lr = trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
    params = rank * 768 * (6 // span)
    for k, v in {"feasible": True, "trained": True, "cost_s": 1.0, "rungs": [{"rung": 0, "score": 0.7, "params": params}],
                 "final_structure": {"method": "lor2c", "spans": [[0, 0]], "ranks": [rank], "injected": []},
                 "plan": {"method": "lor2c", "num_layers": 6, "adapter": {"rank": rank}, "train": {"learning_rate": lr}}
                 }.items():
        trial.set_user_attr(k, v)
    return 0.6 + 0.02 * rank - 3 * abs(lr - 3e-3) + 0.0001 * alpha, params


def _study(tmp_path, n):
    tmp_path.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{tmp_path}/r.db"
    study = optuna.create_study(study_name="r", storage=storage, directions=["maximize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=1))
    study.set_metric_names(["accuracy", "trainable_params"])
    study.optimize(_objective, n_trials=n)
    return study, storage


def _ctx():
    return SimpleNamespace(task=SimpleNamespace(name="sst2", primary_metric="accuracy"), budget=BUDGET,
                           shape=SimpleNamespace(head_params=1), space=SimpleNamespace(name="s"),
                           settings=SimpleNamespace(pick="best", selection_fraction=0.1), trivial=0.5, trivial_dev=0.5,
                           full_steps=100, n_train_full=1000, fidelity=Fidelity.off())


def test_importances_only_where_they_mean_something(tmp_path):
    few, _ = _study(tmp_path / "a", IMPORTANCE_MIN_TRIALS - 1)
    assert importances(few) == {}  # too few top-rung trials to rank anything
    many, _ = _study(tmp_path / "b", 30)
    imp = importances(many)
    assert set(imp["accuracy"]) == {"rank", "span_length", "alpha", "learning_rate"}
    # alpha and the lr cannot change the parameter count: they are not asked about it
    assert set(imp["trainable_params"]) == {"rank", "span_length"}


def test_one_hypervolume_with_a_named_reference_in_show_and_the_report(tmp_path, capsys):
    study, storage = _study(tmp_path / "a", 12)
    study.set_user_attr("budget_params", BUDGET)
    baselines = [{"config": "head-only", "source": "x", "selection_mean": 0.65, "selection_std": None,
                  "dev_mean": 0.6, "dev_std": None, "params": 0, "seeds": 1},
                 {"config": "sharelor2c", "source": "trial 0", "selection_mean": 0.7, "selection_std": None,
                  "dev_mean": 0.7, "dev_std": None, "params": 21_504, "seeds": 1}]
    pick = {"trial": 3, "builtin": None, "seeds": 2, "selection_mean": 0.75, "selection_std": 0.01, "dev_mean": 0.74,
            "dev_std": 0.01, "params": 4_608}
    picked = max(study.best_trials, key=lambda t: t.values[0])
    write_artifacts(study, _ctx(), tmp_path / "out", picked, 1.0, pick=pick, baselines=baselines)
    report = (tmp_path / "out" / "report.md").read_text()
    hv = study_hypervolume(study, BUDGET, 0.65)
    assert f"Hypervolume: {hv:.4f} (reference point: the head alone, accuracy 0.6500" in report
    assert "**Verdict.**" in report and "| 1 |" in report and "± " not in report.split("baseline `sharelor2c`")[1].split("\n")[0]
    assert main(["show", "--study", "r", "--storage", storage]) == 0
    shown = capsys.readouterr().out
    assert f"hypervolume {hv:.4f} (reference: the head alone, accuracy 0.6500" in shown
    # show prints the report's verdict sentence, as the study keeps it
    sentence = report.split("**Verdict.** ")[1].split("\n")[0]
    assert f"verdict: {sentence}" in shown and sentence == study.user_attrs["verdict"]["sentence"]
    # the dashboard's note says what report.md says: the comparison and the verdict
    from optuna_dashboard import get_note

    note = get_note(optuna.load_study(study_name="r", storage=storage))
    assert "The pick beside the baselines" in note and "**Verdict.**" in note and "sharelor2c" in note


def test_hypervolume_history_counts_configurations_not_optuna_trials(tmp_path):
    study = optuna.create_study(directions=["maximize", "minimize"])
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for n, (state, values, attrs) in enumerate([
            ("PRUNED", None, {"trained": True}), ("PRUNED", None, {"trained": True}),
            ("COMPLETE", [0.8, 100.0], {"trained": True, "promoted_from": 0}),
            ("PRUNED", None, {"trained": False, "feasible": False})]):
        study.add_trial(optuna.trial.create_trial(state=getattr(optuna.trial.TrialState, state), values=values,
                                                  params={"x": 0.1 * n}, distributions=dist, user_attrs=attrs))
    hist = hypervolume_history(study, 1000, 0.5)
    assert [h["n"] for h in hist] == [1, 2, 3, 4] and [h["configurations"] for h in hist] == [1, 2, 2, 2]
    assert hist[-1]["hypervolume"] == pytest.approx((0.8 - 0.5) * (1 - 0.1))


def test_the_report_says_which_points_are_worth_their_seeds(tmp_path):
    from autolor2c.search.front import record_seed_noise

    study, _ = _study(tmp_path / "a", 6)
    study.set_user_attr("budget_params", BUDGET)
    picked = max(study.best_trials, key=lambda t: t.values[0])
    # quiet seeds: a point within the bar its 3 seeds must clear is a candidate
    quiet = record_seed_noise(study, picked.number, [picked.values[0]], 0.01, {"lora": [0.800, 0.801, 0.799]},
                              candidate_seeds=3)
    write_artifacts(study, _ctx(), tmp_path / "q", picked, 1.0, noise=quiet)
    assert "is within 0.00" in (tmp_path / "q" / "report.md").read_text()
    assert "were it the mean of its 3 seeds, would pass the recheck" in (tmp_path / "q" / "report.md").read_text()
    # MRPC's noise: no point below the best could be shown tied, and the report says so instead of a negative "within"
    loud = record_seed_noise(study, picked.number, [picked.values[0]], 0.01, {"lora": [0.78, 0.76, 0.75]},
                             candidate_seeds=3)
    write_artifacts(study, _ctx(), tmp_path / "m", picked, 1.0, noise=loud)
    report = (tmp_path / "m" / "report.md").read_text()
    assert "at this noise no point below the best is close enough" in report and "within -" not in report
