"""The one-shot rung in a study: every new configuration is scored in the super-adapter first (nothing
trained), ASHA promotes from those scores into the real rungs; and the super-adapter's cache is keyed like
the baselines' and refused when stale."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from autolor2c.errors import UserError
from autolor2c.search import record
from autolor2c.search.fidelity import Fidelity
from autolor2c.search.run import Objective, run_search
from synthetic_search import FID, full_score, make_fake, settings_for
from test_fidelity import replay_promotions


class StubRung:
    """Stands for OneShotRung: a deterministic one-shot score per structure, and its calls."""

    def __init__(self, ctx):
        self.ctx, self.calls = ctx, []
        self.folder, self.cached, self.train_wall_s, self.train_cpu_s = Path("/nowhere"), True, 0.0, 0.0
        self.run = SimpleNamespace(steps=0)

    def score(self, config):
        self.calls.append(config)
        from autolor2c.train import AdapterSpec

        s = full_score(AdapterSpec("lor2c", lor2c=config), 2e-3, self.ctx.shape) * 0.5
        return {"score": s, "scores": {"accuracy": s}, "wall_s": 0.01, "cpu_s": 0.01, "final_structure": {}}


def test_new_configurations_start_at_the_oneshot_rung_and_asha_promotes_from_it(fast_context, fast_tmp, glue_dir):
    import autolor2c.search.run.study as study_mod

    settings = settings_for(glue_dir, f"sqlite:///{fast_tmp}/o.db", "O", 27, oneshot=True)
    ctx = study_mod.build_context(settings)
    fid = FID.with_oneshot()
    assert ctx.fidelity == fid and fid.fractions[0] == 0.0 and fid.describe().startswith("one-shot, 0.111")
    ctx.oneshot = StubRung(ctx)
    calls: list = []
    study, _, _, _ = run_search(settings, objective_factory=lambda c: Objective(c, trainer=make_fake(c, calls)),
                                ctx=ctx)
    new = [t for t in study.trials if t.user_attrs.get("trained") and "promoted_from" not in t.user_attrs]
    assert len(new) == len(ctx.oneshot.calls) >= 27
    for t in new:  # scored inside the super-adapter, at fraction 0, with the configuration's final params
        r = t.user_attrs[record.RUNGS][0]
        assert r["rung"] == 0 and r["fraction"] == 0.0 and r["steps"] == 0
        assert r["params"] == t.user_attrs[record.PLANNED_PARAMS]["final"]
    # the trainer never ran a one-shot rung; every real rung it ran is on record
    assert {f for _, f in calls} <= set(FID.fractions)
    own_real = sum(1 for t in study.trials for r in t.user_attrs.get(record.RUNGS, [])
                   if r.get("from_trial") is None and r["fraction"] > 0)
    assert len(calls) == own_real
    # promotions from the one-shot rung follow ASHA on its scores, and some reach the top
    assert replay_promotions(study.trials, fid) > 0
    assert any(t.user_attrs.get("start_rung") == 1 for t in study.trials)
    assert any(t.values is not None for t in study.trials)
    assert study.user_attrs[record.ONESHOT]["cached"] is True


def test_the_oneshot_rung_needs_a_lor2c_space(fast_context, fast_tmp, glue_dir):
    import autolor2c.search.run.study as study_mod

    settings = settings_for(glue_dir, f"sqlite:///{fast_tmp}/l.db", "L", 3, oneshot=True, space="lora")
    with pytest.raises(UserError, match="one-shot"):
        study_mod.build_context(settings)


def test_oneshot_identity_round_trips_and_old_identities_still_match():
    from autolor2c.search.run import SearchSettings

    on = SearchSettings(task="sst2", oneshot=True)
    assert on.identity()["fidelity"]["oneshot"] is True
    assert "oneshot" not in SearchSettings(task="sst2").identity()["fidelity"]
    assert SearchSettings.from_identity(on.identity()).oneshot is True
    fid, _ = SearchSettings(task="sst2", oneshot=True, fidelity=Fidelity.off()).resolve_fidelity(900)
    assert fid.fractions == (0.0, 1.0) and fid.oneshot and fid.enabled


def test_the_super_adapter_cache_is_keyed_and_refused_when_stale(fast_context, glue_dir, tmp_path, monkeypatch):
    """Same task, model, data, space, budget and arguments: read from the cache; a changed training argument
    is another key; a folder whose recorded identity differs from its key is retrained, not used."""
    import autolor2c.search.run.study as study_mod
    import autolor2c.train.oneshot as oneshot_train
    from autolor2c.search.fidelity import oneshot

    trained = []

    def fake_train(task, draw, extremes, args, **kw):
        trained.append(args.min_steps)
        import random
        assert len(extremes) == 2 and draw(random.Random(0)).alpha == oneshot.ALPHA
        return SimpleNamespace(wall_s=1.0, cpu_s=1.0, steps=3, model=None)

    monkeypatch.setattr(oneshot_train, "train_super_adapter", fake_train)
    monkeypatch.setattr(oneshot_train, "save_super_adapter",
                        lambda run, folder, meta: (Path(folder).mkdir(parents=True, exist_ok=True),
                                                   (Path(folder) / oneshot_train.META).write_text(json.dumps(meta)),
                                                   (Path(folder) / oneshot_train.WEIGHTS).write_text("x")))
    monkeypatch.setattr(oneshot_train, "load_super_adapter", lambda folder, *a, **k: SimpleNamespace(steps=3))
    base = dict(budget="0.1M", builtins_first=False, sampler="random")
    ctx = study_mod.build_context(settings_for(glue_dir, None, "C", 3, **base))
    first = oneshot.OneShotRung(ctx, cache_dir=tmp_path, progress=False)
    again = oneshot.OneShotRung(ctx, cache_dir=tmp_path, progress=False)
    assert not first.cached and again.cached and first.folder == again.folder and len(trained) == 1
    other = dataclasses.replace(ctx, settings=settings_for(glue_dir, None, "C", 3, min_steps=7, **base))
    changed = oneshot.OneShotRung(other, cache_dir=tmp_path, progress=False)
    assert changed.folder != first.folder and not changed.cached and len(trained) == 2
    meta = json.loads((first.folder / oneshot_train.META).read_text())
    meta["identity"]["trainer"] = -1  # what an older trainer left under the same name
    (first.folder / oneshot_train.META).write_text(json.dumps(meta))
    stale = oneshot.OneShotRung(ctx, cache_dir=tmp_path, progress=False)
    assert not stale.cached and len(trained) == 3
