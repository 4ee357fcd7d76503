"""Search settings (settings.py): the selection split, one function for a run's training arguments, the top
rung equal to `autolor2c train`, rungs from (minimum, full, eta), and checks before anything is created."""

from __future__ import annotations

import dataclasses
import math

import pytest

from autolor2c.errors import UserError
from autolor2c.search.fidelity import Fidelity
from autolor2c.search.run import SearchSettings
from autolor2c.tasks import load_task_data, trivial_score
from autolor2c.train import TrainArgs, planned_steps, training_args


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
    from datasets import Dataset  # a dataset's column (read in one slice, not row by row) scores the same

    ds = Dataset.from_dict({"label": [1, 1, 0, 1, 0, 0, 0]}).select([0, 1, 2, 3, 4, 5, 6])
    assert trivial_score("sst2", ds.select([0, 1, 2])["label"], ds.select([3, 4, 5, 6])["label"]) == 0.25


# --------------------------------------------------------------------------------------------------
# One function for training arguments; the top rung is the run `autolor2c train` makes
# --------------------------------------------------------------------------------------------------
def test_the_top_rung_is_the_run_autolor2c_train_makes():
    s = SearchSettings(task="sst2", selection_fraction=0.1, backbone_dropout=0.0)
    plan_train = {"learning_rate": 3e-3, "weight_decay": 0.05, "warmup_ratio": 0.1, "batch_size": 16}
    top = s.train_args(plan_train)
    # what `autolor2c train --config best_config.yaml` builds from the file the search writes (cli.cmd_train)
    from autolor2c.search.results import best_config_dict

    class T:
        number, values = 7, [0.9, 100.0]
        user_attrs = {"plan": {"space": "x", "method": "lor2c", "num_layers": 6, "adapter": {"rank": 4},
                               "train": plan_train, "clamped": {}},
                      "train_args": dataclasses.asdict(top), "final_structure": {}}

    cfg = best_config_dict(T(), "study")
    assert training_args(cfg["train"]) == dataclasses.replace(top, progress=TrainArgs.progress)
    for k, v in plan_train.items():  # the plan's training keys (the searched lr) reach the run
        assert getattr(top, k) == v
    assert top.max_train_samples is None and top.score_dev and top.max_evals == TrainArgs().max_evals
    # every extra seed of a configuration is the same run with another seed
    assert dataclasses.replace(s.train_args(plan_train, seed=2), seed=0) == dataclasses.replace(top, seed=0)


def test_a_low_rung_is_a_share_of_the_top_rungs_steps_on_its_rows_evaluated_once():
    s = SearchSettings(task="sst2")
    for rows in (3000, 900_000):  # a small set the full run repeats (25 epochs), a large one it visits once
        full = planned_steps(s.train_args({}), rows)
        for fraction in (1 / 9, 1 / 3):
            rung = s.train_args({}, n_full=rows, fraction=fraction)
            assert rung.max_evals == 1 and not rung.score_dev
            assert rung.max_train_samples == rows  # every row, so a rung repeats no row more than the full run
            assert planned_steps(rung, rows) == math.ceil(full * fraction)
    assert planned_steps(s.train_args({}), 3000) == TrainArgs.min_steps  # the small set is the repeated case
    with pytest.raises(ValueError):
        s.train_args({}, fraction=0.5)  # a low rung needs the top rung's rows


def test_rungs_from_minimum_full_and_eta():
    assert Fidelity.for_run(2043, 200, 3.0).fractions == pytest.approx((1 / 9, 1 / 3, 1.0))
    assert Fidelity.for_run(1800, 200, 3.0).fractions == pytest.approx((1 / 9, 1 / 3, 1.0))  # 1800/9 = 200
    assert Fidelity.for_run(1799, 200, 3.0).fractions == pytest.approx((1 / 3, 1.0))
    assert Fidelity.for_run(5400, 200, 3.0).fractions == pytest.approx((1 / 27, 1 / 9, 1 / 3, 1.0))
    assert Fidelity.for_run(2000, 200, 2.0).fractions == pytest.approx((1 / 8, 1 / 4, 1 / 2, 1.0))
    off = Fidelity.for_run(300, 200, 3.0)
    assert not off.enabled and off.fractions == (1.0,)
    # a short task turns multi-fidelity off and says so in one line; an explicit choice is kept
    fid, note = SearchSettings(min_rung_steps=200).resolve_fidelity(300)
    assert not fid.enabled and note.count("\n") == 0 and "multi-fidelity off" in note and "300 steps" in note
    fid, note = SearchSettings().resolve_fidelity(2043)
    assert fid.enabled and note is None
    explicit = Fidelity((0.5, 1.0), 2.0)
    assert SearchSettings(fidelity=explicit).resolve_fidelity(300) == (explicit, None)


@pytest.mark.parametrize("field,value", [
    ("selection_fraction", 1.5), ("selection_fraction", -0.1), ("batch_size", 0), ("max_length", 4),
    ("min_steps", -1), ("max_train_samples", 0), ("max_eval_samples", 0), ("epochs", 0.0), ("reduction_factor", 1.0),
    ("min_rung_steps", 0), ("seeds", -1), ("baseline_seeds", 0), ("trials", 0), ("pick", "largest"), ("sampler", "cmaes"),
    ("backbone_dropout", 1.5), ("budget", "lots"),
])
def test_every_value_that_reaches_training_is_checked_up_front(field, value):
    with pytest.raises(UserError):
        SearchSettings(**{field: value}).validate()
    SearchSettings().validate()


def test_the_run_length_rule_lifts_small_tasks_and_keeps_an_epoch_on_large_ones():
    from autolor2c.cli import build_parser
    from autolor2c.search.run import settings_fields

    args = TrainArgs()
    small, sst2, large = 3_300, 65_000, 103_000     # MRPC's, SST-2's and QNLI's training rows less the selection split
    epoch = lambda n: math.ceil(n / args.batch_size)  # noqa: E731
    assert planned_steps(args, small) == args.min_steps > 2 * epoch(small)   # a small task: several epochs
    assert planned_steps(args, sst2) == max(args.min_steps, epoch(sst2)) >= epoch(sst2)  # never under one epoch
    assert planned_steps(args, large) == epoch(large) > args.min_steps       # a large one: one epoch, no fewer
    assert planned_steps(TrainArgs(epochs=2), large) == 2 * epoch(large)
    # the search's top rung and `autolor2c train` share the rule; the help texts name its default
    assert SearchSettings().train_args({}).min_steps == args.min_steps
    assert str(args.min_steps) in settings_fields()["min_steps"].metadata["help"]
    train_help = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert f"default {args.min_steps}" in " ".join(train_help.split())
    # multi-fidelity is on for a small task's full run now
    fid, note = SearchSettings().resolve_fidelity(planned_steps(args, small))
    assert fid.enabled and note is None
