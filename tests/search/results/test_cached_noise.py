"""The seed noise from the cached baseline seeds (retrain.py): the baselines' seeds, the built-ins' seeds 1 on
included, train once per task, model, data and training arguments and are reused by a later search; their
pooled spread is the noise the pick uses, so the best trains no seed to measure it, and the pick still trains
its seeds for the report. On the synthetic search: no training."""

from __future__ import annotations

import dataclasses
import json
from types import SimpleNamespace

import pytest

import autolor2c.search.results.retrain as retrain_mod
import autolor2c.search.run.kept_runs as kept_runs
from autolor2c.search import record, search
from autolor2c.search.fidelity import Fidelity
from autolor2c.search.front import NOISE_FROM_BASELINES, external_noise, record_seed_noise, refuted_ties
from autolor2c.search.run import Objective, plan_to_spec, run_search
from autolor2c.train import count_adapter_params
from synthetic_search import (factory, fake_result, fake_seed_trainer, full_score, make_fake, settings_for,
                              study_with_front)


# --------------------------------------------------------------------------------------------------
# The pick rule with the noise of the cached baselines (a study by hand; train_seeds faked)
# --------------------------------------------------------------------------------------------------
def _baseline(config, selections):
    return {"config": config, "runs": [{"seed": k, "selection": s} for k, s in enumerate(selections)]}


def test_the_noise_comes_from_the_cached_baselines_and_the_best_trains_no_seed(monkeypatch):
    study = study_with_front([(0.7795, 2_304), (0.7800, 5_760), (0.7820, 18_432)])
    later = {0: [0.7700, 0.7690], 1: [0.7790, 0.7780], 2: [0.7800, 0.7790]}  # each trial's seeds 1 and 2
    trained = []

    monkeypatch.setattr(retrain_mod, "train_seeds", fake_seed_trainer(later, trained))
    ctx = SimpleNamespace(task=SimpleNamespace(primary_metric="accuracy"))
    baselines = [_baseline("lor2c", [0.800, 0.802, 0.798]), _baseline("lora", [0.790, 0.792, 0.788]),
                 _baseline("head-only", [0.600, 0.600, 0.600]),   # degenerate: left out of the noise
                 _baseline("adalora", [0.75])]                     # one seed: measures nothing
    chosen = retrain_mod.pick_over_seeds(study, ctx, "smallest-tied", 3, baselines=baselines)
    noise = chosen.noise
    assert noise["source"] == NOISE_FROM_BASELINES and set(noise["baselines"]) == {"lor2c", "lora"}
    assert noise["std"] == pytest.approx(0.002) and noise["df"] == 4
    assert study.user_attrs[record.SEED_NOISE] == noise
    # the candidates train their seeds, smallest first (trial 0's tie is refuted); the best (2) trains none
    assert trained == [0, 1]
    assert refuted_ties(study) == {0} and chosen.picked.number == 1
    assert chosen.pick["trial"] == 1 and chosen.pick["seeds"] == 3      # the pick's seeds, for the report
    assert chosen.best["trial"] == 2 and chosen.best["seeds"] == 1
    # retrain on the same study reuses the recorded noise: nothing trains, the pick is the same
    trained.clear()
    assert retrain_mod.pick_over_seeds(study, ctx, "smallest-tied", 3).picked.number == 1 and trained == []
    assert study.user_attrs[record.SEED_NOISE]["source"] == NOISE_FROM_BASELINES
    # no baseline with two seeds: the best's seeds measure the noise, as before
    study2 = study_with_front([(0.7795, 2_304), (0.7800, 5_760), (0.7820, 18_432)])
    chosen = retrain_mod.pick_over_seeds(study2, ctx, "smallest-tied", 3, baselines=[_baseline("lor2c", [0.8])])
    assert trained[0] == 2 and chosen.noise["source"] != NOISE_FROM_BASELINES and chosen.noise["seeds"] == 3


def test_a_candidate_its_seeds_could_not_vouch_for_trains_none(monkeypatch):
    # the STS-B headline's front: the best (one run) and two smaller points 0.5 and 0.7 points below it, at the
    # noise of its cached baseline seeds (sd 0.0046); 3 seeds could hold neither, so neither trains them
    study = study_with_front([(0.8411, 9_984), (0.8434, 18_432), (0.8484, 36_864)])
    trained = []
    monkeypatch.setattr(retrain_mod, "train_seeds", fake_seed_trainer({2: [0.85, 0.85]}, trained))
    ctx = SimpleNamespace(task=SimpleNamespace(primary_metric="pearson"))
    baselines = [_baseline("lor2c", [0.8484, 0.8540, 0.8493]), _baseline("lora", [0.8478, 0.8487, 0.8420]),
                 _baseline("adalora", [0.8472, 0.8504, 0.8453]), _baseline("sharelor2c", [0.8337, 0.8398, 0.8469])]
    chosen = retrain_mod.pick_over_seeds(study, ctx, "smallest-tied", 3, baselines=baselines)
    assert chosen.picked.number == 2 and trained == [2]     # the best trains its seeds as the pick, no one else
    assert chosen.noise["threshold"] < 0.005 and chosen.noise["candidate_seeds"] == 3
    # with no recheck (--seeds 1) a first-seed tie is all there is: the screen is the noise alone
    study = study_with_front([(0.8411, 9_984), (0.8434, 18_432), (0.8484, 36_864)])
    assert retrain_mod.pick_over_seeds(study, ctx, "smallest-tied", 1, baselines=baselines).picked.number == 0


def test_a_tie_check_does_not_count_the_best_builtins_own_seeds_twice():
    study = study_with_front([(0.80, 1_000)])
    noise = record_seed_noise(study, 0, [0.80, 0.79], 0.01,
                              baselines={"lor2c": [0.80, 0.79, 0.81], "lora": [0.70, 0.702, 0.698]})
    assert external_noise(noise) == (pytest.approx(((0.0002 + 0.000008) / 4) ** 0.5), 4)
    assert external_noise(noise, exclude="lor2c") == (pytest.approx(0.002), 2)
    assert external_noise(record_seed_noise(study, 0, [0.80, 0.79], 0.01)) is None  # the best's own seeds


# --------------------------------------------------------------------------------------------------
# The whole search on the synthetic trainer: cached across searches, refused when stale
# --------------------------------------------------------------------------------------------------
def _spec_key(spec) -> str:
    return json.dumps(spec.to_dict(), sort_keys=True, default=str)


@pytest.fixture
def seed_trainer(monkeypatch):
    """retrain's ``train`` faked: the synthetic score plus a small seed-dependent noise; each call is kept."""
    calls: list[tuple[str, int]] = []
    state = {}

    def fake(task, spec, args, model_name=None, data_dir=None, out_dir=None):
        ctx = state["ctx"]
        calls.append((_spec_key(spec), args.seed))
        params = count_adapter_params(spec, ctx.shape)["final"]
        score = full_score(spec, args.learning_rate, ctx.shape) + 0.003 * ((args.seed * 7 + params) % 5 - 2)
        return fake_result(ctx, spec, args, score, params, wall_time_s=0.01, dev_score=score - 0.01,
                           dev_scores={"accuracy": score - 0.01})

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # one process: the fake is patched in this one
    monkeypatch.setattr(retrain_mod, "train", fake)
    return SimpleNamespace(calls=calls, state=state)


def _search(glue_dir, fast_tmp, tmp_path, name, seed_trainer, objective_factory=None, **kw):
    settings = dataclasses.replace(settings_for(glue_dir, f"sqlite:///{fast_tmp}/s.db", name, 5, builtins_first=True,
                                                baseline_seeds=3, out=str(tmp_path / "studies" / name), **kw),
                                   fidelity=Fidelity.off(), seeds=3)

    def run_trials(st):
        study, ctx, _, _ = run_search(st, objective_factory=objective_factory or factory())
        seed_trainer.state["ctx"] = ctx
        return study, ctx

    seed_trainer.calls.clear()
    outcome = search(settings, run_trials=run_trials)
    return outcome, seed_trainer.state["ctx"], list(seed_trainer.calls)


def _baseline_specs(study, ctx) -> set[str]:
    builtins = {_spec_key(plan_to_spec(retrain_mod.trial_plan(t)))
                for t in record.builtin_trials(study.get_trials(deepcopy=False)).values()}
    return builtins | {_spec_key(spec) for _, spec, _ in retrain_mod.baselines_apart(ctx)}


def test_baseline_seeds_are_cached_across_searches_and_retrained_when_stale(fast_context, fast_tmp, tmp_path, glue_dir,
                                                                           seed_trainer, monkeypatch):
    first, ctx, calls = _search(glue_dir, fast_tmp, tmp_path, "first", seed_trainer)
    study = first.study
    builtins = record.builtin_trials(study.get_trials(deepcopy=False))
    assert len(builtins) >= 2
    # the built-ins train seeds 1 and 2 (the trial is seed 0), the baselines apart seeds 0 to 2
    for t in builtins.values():
        key = _spec_key(plan_to_spec(retrain_mod.trial_plan(t)))
        assert sorted(s for k, s in calls if k == key) == [1, 2]
    for name, spec, _ in retrain_mod.baselines_apart(ctx):
        assert sorted(s for k, s in calls if k == _spec_key(spec)) == [0, 1, 2], name
    cache = tmp_path / "studies" / "baselines"
    assert len(list(cache.glob("*.json"))) == len(builtins) + len(retrain_mod.baselines_apart(ctx))
    # the noise is theirs (the head alone left out); every baseline row has three seeds
    noise = first.noise
    assert noise["source"] == NOISE_FROM_BASELINES and "head-only" not in noise["baselines"]
    assert set(builtins) <= set(noise["baselines"]) and all(len(v) == 3 for v in noise["baselines"].values())
    assert all(b["seeds"] == 3 for b in first.baselines)
    # the best trains no seed unless it is the pick; the pick's three seeds meet the baselines' three
    best_trial = study.trials[first.best["trial"]]
    picked_or_builtin = first.picked.number == best_trial.number or record.builtin_of(best_trial)
    assert first.best["seeds"] == (3 if picked_or_builtin else 1)
    assert first.pick["seeds"] == 3 and first.pick["trial"] == first.picked.number
    c = study.user_attrs[record.VERDICT]["comparison"]
    # (a synthetic trial, seed 0, scores no dev set: the pick's dev runs are its seeds that do)
    assert c["n_b"] == 3 and c["n_a"] == sum(r["dev"] is not None for r in first.pick["runs"])
    retrain = json.loads((first.out / "retrain.json").read_text())
    assert retrain["noise"]["source"] == NOISE_FROM_BASELINES
    assert "from the cached baseline seeds" in (first.out / "report.md").read_text()
    baseline_specs = _baseline_specs(study, ctx)
    pick_stage = {_spec_key(plan_to_spec(retrain_mod.trial_plan(study.trials[n])))
                  for n in {first.picked.number} | refuted_ties(study)}
    assert {k for k, _ in calls} <= baseline_specs | pick_stage

    # a second search with the same task, model, data and arguments trains none of the baselines' seeds
    second, ctx2, calls = _search(glue_dir, fast_tmp, tmp_path, "second", seed_trainer)
    assert not {k for k, _ in calls} & _baseline_specs(second.study, ctx2)
    assert [b["seeds"] for b in second.baselines] == [b["seeds"] for b in first.baselines]
    assert [b["selection_mean"] for b in second.baselines] == [b["selection_mean"] for b in first.baselines]
    assert second.noise["source"] == NOISE_FROM_BASELINES and second.noise["baselines"] == noise["baselines"]
    assert second.pick["seeds"] == 3   # the pick's seeds are still trained (or on record) for the report
    for name, t in record.builtin_trials(second.study.get_trials(deepcopy=False)).items():
        assert [r["seed"] for r in record.extra_seed_runs(second.study, t.number)] == [1, 2], name

    # a changed training argument misses the cache: every baseline seed trains again
    third, ctx3, calls = _search(glue_dir, fast_tmp, tmp_path, "third", seed_trainer, backbone_dropout=0.1)
    for name, spec, _ in retrain_mod.baselines_apart(ctx3):
        assert sorted(s for k, s in calls if k == _spec_key(spec)) == [0, 1, 2], name
    for t in record.builtin_trials(third.study.get_trials(deepcopy=False)).values():
        assert sorted(s for k, s in calls if k == _spec_key(plan_to_spec(retrain_mod.trial_plan(t)))) == [1, 2]

    # so does another trainer version, with the same settings as the first search
    monkeypatch.setattr(kept_runs, "TRAINER_VERSION", "another")
    _, ctx4, calls = _search(glue_dir, fast_tmp, tmp_path, "fourth", seed_trainer)
    assert {_spec_key(spec) for _, spec, _ in retrain_mod.baselines_apart(ctx4)} <= {k for k, _ in calls}


def test_with_another_seed_no_extra_seed_repeats_the_trials_run(fast_context, fast_tmp, tmp_path, glue_dir,
                                                                 seed_trainer):
    """Seed k of a configuration trains with --seed + k: at --seed 1 the built-in trial is the run of seed 1,
    so its extra seeds train 2 and 3 (not 1 again, which would shrink the noise); the cache holds the seeds
    runs trained with, so a search at --seed 0 reuses seeds 1 and 2 and trains only 0."""
    one, ctx, calls = _search(glue_dir, fast_tmp, tmp_path, "one", seed_trainer, seed=1)
    for t in record.builtin_trials(one.study.get_trials(deepcopy=False)).values():
        assert sorted(s for k, s in calls if k == _spec_key(plan_to_spec(retrain_mod.trial_plan(t)))) == [2, 3]
    for name, spec, _ in retrain_mod.baselines_apart(ctx):
        assert sorted(s for k, s in calls if k == _spec_key(spec)) == [1, 2, 3], name
    _, ctx0, calls = _search(glue_dir, fast_tmp, tmp_path, "zero", seed_trainer)
    for name, spec, _ in retrain_mod.baselines_apart(ctx0):
        assert sorted(s for k, s in calls if k == _spec_key(spec)) == [0], name


def test_a_stale_cache_entry_is_refused(fast_context, fast_tmp, tmp_path, glue_dir, seed_trainer):
    """A cache file under the right name whose recorded identity (or params) disagrees trains again."""
    settings = dataclasses.replace(settings_for(glue_dir, f"sqlite:///{fast_tmp}/c.db", "c", 3, builtins_first=True,
                                                out=str(tmp_path / "studies" / "c")), fidelity=Fidelity.off())
    study, ctx, _, _ = run_search(settings, objective_factory=factory())
    seed_trainer.state["ctx"] = ctx
    cache = tmp_path / "studies" / "baselines"
    name, spec, plan_train = retrain_mod.baselines_apart(ctx)[0]
    retrain_mod.train_baseline(ctx, cache, name, spec, plan_train, 2, False)
    assert [s for _, s in seed_trainer.calls] == [0, 1]
    f = next(cache.glob(f"*-{name}-*.json"))
    seed_trainer.calls.clear()
    retrain_mod.train_baseline(ctx, cache, name, spec, plan_train, 3, False)
    assert [s for _, s in seed_trainer.calls] == [2]           # only the missing seed
    data = json.loads(f.read_text())
    data["ident"]["trainer"] = "an older trainer"
    f.write_text(json.dumps(data))
    seed_trainer.calls.clear()
    retrain_mod.train_baseline(ctx, cache, name, spec, plan_train, 3, False)
    assert [s for _, s in seed_trainer.calls] == [0, 1, 2]     # refused: trained again
    # a built-in's cached seeds that count other params than its trial are not used either
    builtins = record.builtin_trials(study.get_trials(deepcopy=False))
    builtin, t = next(iter(builtins.items()))
    seed_trainer.calls.clear()
    retrain_mod.builtin_baselines(study, ctx, 3, False, cache)
    assert [s for _, s in seed_trainer.calls] == [1, 2] * len(builtins)
    g = next(cache.glob(f"*-{builtin}-*.json"))
    data = json.loads(g.read_text())
    for r in data["runs"]:
        r["params"] += 1
    g.write_text(json.dumps(data))
    study.set_user_attr(record.SEED_RUNS, {})
    seed_trainer.calls.clear()
    retrain_mod.builtin_baselines(study, ctx, 3, False, cache)
    assert seed_trainer.calls == [(_spec_key(plan_to_spec(retrain_mod.trial_plan(t))), 1),
                                  (_spec_key(plan_to_spec(retrain_mod.trial_plan(t))), 2)]
    assert all(r["params"] == int(t.values[1]) for r in json.loads(g.read_text())["runs"])  # replaced


def test_the_seeds_that_finished_are_kept_when_a_later_one_fails(fast_context, fast_tmp, tmp_path, glue_dir,
                                                                 seed_trainer, monkeypatch):
    """Each seed is recorded as it finishes: a search killed (or a run failing) while seed 2 trains keeps seeds
    0 and 1 of a baseline, and seed 1 of a trial, so the next run trains seed 2 alone."""
    settings = dataclasses.replace(settings_for(glue_dir, f"sqlite:///{fast_tmp}/k.db", "k", 3, builtins_first=True,
                                                out=str(tmp_path / "studies" / "k")), fidelity=Fidelity.off())
    study, ctx, _, _ = run_search(settings, objective_factory=factory())
    seed_trainer.state["ctx"] = ctx
    fake = retrain_mod.train

    def fails_at_seed_2(task, spec, args, **kw):
        if args.seed == 2:
            raise RuntimeError("killed while seed 2 trained")
        return fake(task, spec, args, **kw)

    cache = tmp_path / "studies" / "baselines"
    name, spec, plan_train = retrain_mod.baselines_apart(ctx)[0]
    t = next(iter(record.builtin_trials(study.get_trials(deepcopy=False)).values()))
    monkeypatch.setattr(retrain_mod, "train", fails_at_seed_2)
    with pytest.raises(RuntimeError, match="seed 2"):
        retrain_mod.train_baseline(ctx, cache, name, spec, plan_train, 3, False)
    with pytest.raises(RuntimeError, match="seed 2"):
        retrain_mod.train_seeds(study, ctx, t, 3, False)
    assert [r["seed"] for r in record.extra_seed_runs(study, t.number)] == [1]

    monkeypatch.setattr(retrain_mod, "train", fake)
    seed_trainer.calls.clear()
    assert retrain_mod.train_baseline(ctx, cache, name, spec, plan_train, 3, False)["seeds"] == 3
    assert retrain_mod.train_seeds(study, ctx, t, 3, False)["seeds"] == 3
    assert [s for _, s in seed_trainer.calls] == [2, 2]   # only the seed that had not finished, twice


def test_every_baselines_missing_seeds_share_one_pool_the_heads_last(fast_context, fast_tmp, tmp_path, glue_dir,
                                                                   seed_trainer, monkeypatch):
    """Per baseline, three seeds on two cores left a core idle for a whole run: the missing seeds of every
    baseline go to one pool, the head's (the cheapest) last, and a run failing there keeps every seed that
    finished before it, so the next search trains that seed alone."""
    settings = dataclasses.replace(settings_for(glue_dir, f"sqlite:///{fast_tmp}/p.db", "p", 3, builtins_first=True,
                                                out=str(tmp_path / "studies" / "p")), fidelity=Fidelity.off())
    study, ctx, _, _ = run_search(settings, objective_factory=factory())
    seed_trainer.state["ctx"] = ctx
    pools, runs, fake = [], retrain_mod._runs, retrain_mod.train

    def pool_spy(ctx, jobs, progress, free_cores=None):
        pools.append([(spec.method, seed) for spec, _, seed, _ in jobs])
        yield from runs(ctx, jobs, progress, free_cores)

    def the_heads_seed_2_fails(task, spec, args, **kw):
        if spec.method == "head" and args.seed == 2:
            raise RuntimeError("killed while the head's seed 2 trained")
        return fake(task, spec, args, **kw)

    monkeypatch.setattr(retrain_mod, "_runs", pool_spy)
    monkeypatch.setattr(retrain_mod, "train", the_heads_seed_2_fails)
    with pytest.raises(RuntimeError, match="head's seed 2"):
        retrain_mod.train_baselines(study, ctx, 3, False)
    builtins = record.builtin_trials(study.get_trials(deepcopy=False))
    apart = retrain_mod.baselines_apart(ctx)
    assert len(builtins) >= 2 and len(apart) >= 2
    assert len(pools) == 1 and len(pools[0]) == 2 * len(builtins) + 3 * len(apart)
    methods = [m for m, _ in pools[0]]
    assert methods[-3:] == ["head"] * 3 and "head" not in methods[:-3]
    for t in builtins.values():
        assert [r["seed"] for r in record.extra_seed_runs(study, t.number)] == [1, 2]

    monkeypatch.setattr(retrain_mod, "train", fake)
    pools.clear()
    rows = retrain_mod.train_baselines(study, ctx, 3, False)
    assert pools == [[("head", 2)]]
    assert [r["seeds"] for r in rows] == [3] * (len(builtins) + len(apart))


def test_a_builtin_trials_run_is_kept_and_the_next_search_trains_it_no_more(fast_context, fast_tmp, tmp_path, glue_dir,
                                                                           seed_trainer, monkeypatch):
    """A built-in's top-rung trial depends on the set-up alone, as its baseline seeds do: the next search on
    the same task, model, data and arguments takes its run and model from the cache (at no cost) instead of
    training it again; another argument trains it again."""
    from pathlib import Path

    trained: list[str] = []

    def saving(ctx):
        fake = make_fake(ctx)

        def trainer(task, spec, args, out_dir=None, **kw):   # writes what train(out_dir=...) writes
            trained.append(_spec_key(spec))
            r = fake(task, spec, args, **kw)
            if out_dir is not None:
                (Path(out_dir) / "adapter").mkdir(parents=True, exist_ok=True)
                (Path(out_dir) / "adapter" / "weights").write_text(_spec_key(spec))
                (Path(out_dir) / "metrics.json").write_text(json.dumps(r.to_dict(), default=str))
            return r
        return Objective(ctx, trainer=trainer)

    def builtin_keys(study):
        return {name: _spec_key(plan_to_spec(retrain_mod.trial_plan(t)))
                for name, t in record.builtin_trials(study.get_trials(deepcopy=False)).items()}

    first, _, _ = _search(glue_dir, fast_tmp, tmp_path, "first", seed_trainer, saving)
    keys = builtin_keys(first.study)
    assert len(keys) >= 2 and set(keys.values()) <= set(trained)
    trained.clear()
    second, _, _ = _search(glue_dir, fast_tmp, tmp_path, "second", seed_trainer, saving)
    assert builtin_keys(second.study) == keys and not set(keys.values()) & set(trained)
    assert trained   # its own configurations still train
    was = record.builtin_trials(first.study.get_trials(deepcopy=False))
    for name, t in record.builtin_trials(second.study.get_trials(deepcopy=False)).items():
        assert t.values == was[name].values and t.user_attrs[record.DEV_SCORES] == was[name].user_attrs[record.DEV_SCORES]
        assert t.user_attrs[record.KEPT_RUN].endswith(".json") and t.user_attrs[record.COST_S] == 0.0
        assert (Path(record.adapter_dir(t)) / "weights").read_text() == keys[name]   # its model, in its own folder
        assert Path(record.adapter_dir(t)) != Path(record.adapter_dir(was[name]))
    # a changed training argument: trained again
    trained.clear()
    _search(glue_dir, fast_tmp, tmp_path, "third", seed_trainer, saving, backbone_dropout=0.1)
    assert set(keys.values()) <= set(trained)
