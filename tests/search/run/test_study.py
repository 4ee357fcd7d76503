"""The study: resume in the middle of a rung (a killed worker's trial re-queued), warm start from another
study's front, the built-ins tried first; on the synthetic search (no training)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
import subprocess

import optuna
import pytest
from optuna.trial import TrialState

from autolor2c.errors import UserError
from autolor2c.search import record
from autolor2c.search.front import pareto_front, trained_configurations
from autolor2c.search.fidelity import Fidelity
from autolor2c.search.run import (WORKER_ATTR, Objective, SearchSettings, fail_orphaned_trials, is_gone, open_study,
                                  resolve_storage, run_search, set_worker, this_process, warm_start)
from autolor2c.search.run import objective as objective_module
from autolor2c.search.run.optuna_internals import BEAT_ATTR, beat
from autolor2c.search.run.ordered import _gone as ordered_gone
from autolor2c.search.run.owner import STALE_S
from synthetic_search import Killed, expected_full, factory, make_fake, rung_fraction, settings_for

DONE = (TrialState.COMPLETE, TrialState.PRUNED)


# --------------------------------------------------------------------------------------------------
# Resume in the middle of a rung
# --------------------------------------------------------------------------------------------------
def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="a process's start is read from /proc")
def test_a_trial_owned_by_a_reused_pid_is_recovered():
    """After a reboot, or in a new container, the dead owner's pid can be a live process's, even the resuming
    search's own: the owner is named with its start, so its RUNNING trial is still failed and queued again."""
    me = this_process()
    host, pid, start = me.rsplit(":", 2)
    assert host == socket.gethostname() and int(pid) == os.getpid() and not is_gone(me)
    earlier_me = f"{host}:{pid}:{start}0"          # this pid, another start: another process
    assert is_gone(earlier_me) and is_gone(f"{host}:{_dead_pid()}:{start}")
    assert is_gone(f"{host}:{_dead_pid()}") and not is_gone(f"{host}:{pid}")   # named by the pid alone
    assert not is_gone(f"another-{host}:{_dead_pid()}:{start}")              # another host's: heartbeats tell
    study = optuna.create_study(directions=["maximize", "minimize"])
    mine, orphan = study.ask(), study.ask()
    orphan.suggest_int("rank", 1, 8)
    set_worker(mine, me)
    set_worker(orphan, earlier_me)
    assert fail_orphaned_trials(study) == [orphan.number]
    trials = study.get_trials(deepcopy=False)
    assert trials[mine.number].state == TrialState.RUNNING and trials[orphan.number].state == TrialState.FAIL
    assert trials[-1].state == TrialState.WAITING and trials[-1].user_attrs["retry_of"] == orphan.number
    # a caller that knows no process runs the study now (it moved to another machine) fails every one
    assert fail_orphaned_trials(study, gone=lambda *_: True) == [mine.number]


def test_another_hosts_trial_on_a_journal_is_gone_once_its_beats_stop(tmp_path):
    """A journal file has no heartbeats: a trial beats itself, and another host's trial whose beats stopped is
    failed and queued again (a search moved to a new host would otherwise wait for it forever)."""
    other = f"another-{socket.gethostname()}:12:ab.34"
    assert not is_gone(other) and not is_gone(other, time.time() - 60)
    assert is_gone(other, time.time() - STALE_S - 1)
    study = optuna.create_study(storage=resolve_storage(f"journal:{tmp_path / 's.journal'}"),
                                directions=["maximize", "minimize"])
    beating_now, stopped, never = study.ask(), study.ask(), study.ask()
    for t in (beating_now, stopped, never):
        set_worker(t, other)
    beat(beating_now)
    study._storage.set_trial_system_attr(stopped._trial_id, BEAT_ATTR, time.time() - STALE_S - 5)
    running = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert [n for n, t in running.items() if ordered_gone(t)] == [stopped.number]
    assert fail_orphaned_trials(study) == [stopped.number]  # no beat at all: an older study's, not judged
    assert [t.state for t in study.get_trials(deepcopy=False)] == [TrialState.RUNNING, TrialState.FAIL,
                                                                   TrialState.RUNNING, TrialState.WAITING]


def test_a_trial_on_a_journal_beats_while_it_trains_and_not_after(fast_context, fast_tmp, glue_dir, monkeypatch):
    monkeypatch.setattr(objective_module, "BEAT_S", 0.02)
    journal = fast_tmp / "b.journal"
    beats: list[tuple[int, float]] = []

    def trainer(ctx):
        fake = make_fake(ctx)

        def run(task, spec, args, **kw):
            time.sleep(0.3)  # a training run: the beats go on meanwhile
            return fake(task, spec, args, model_name=kw.get("model_name"), data_dir=kw.get("data_dir"))
        return Objective(ctx, trainer=run)

    real_beat = objective_module.beat
    monkeypatch.setattr(objective_module, "beat", lambda t: (beats.append((t.number, time.time())), real_beat(t)))
    study, _, objective, _ = run_search(settings_for(glue_dir, f"journal:{journal}", "J", 4),
                                        objective_factory=trainer)
    assert objective.trained and all(t.state in DONE for t in study.trials)
    for n in objective.trained:
        mine = [at for number, at in beats if number == n]
        assert len(mine) >= 5  # one at the start, then every 0.02 s through a 0.3 s run
        assert study.trials[n].system_attrs[BEAT_ATTR] == pytest.approx(mine[-1])
        assert mine[-1] <= study.trials[n].datetime_complete.timestamp()  # none after it finished


def test_resume_in_the_middle_of_a_rung(fast_context, fast_tmp, glue_dir):
    storage = f"sqlite:///{fast_tmp}/x.db"
    settings = settings_for(glue_dir, storage, "R", 12)
    with pytest.raises(Killed):
        run_search(settings, objective_factory=factory(kill_on_rung1_call=2))
    study = optuna.load_study(study_name="R", storage=storage)
    running = [t for t in study.trials if t.state == TrialState.RUNNING]
    assert len(running) == 1
    orphan = running[0]
    assert orphan.system_attrs[WORKER_ATTR] == this_process()
    # killed while training a promotion at rung 1: the copied rung-0 record is not on it yet
    assert orphan.user_attrs["start_rung"] == 1 and record.RUNGS not in orphan.user_attrs
    before = {t.number: t.user_attrs.get(record.RUNGS) for t in study.trials if t.number != orphan.number}
    assert 0 < trained_configurations(study) < 12

    # this process is alive; make the orphan's worker a dead process on this host
    study._storage.set_trial_system_attr(orphan._trial_id, WORKER_ATTR, f"{socket.gethostname()}:{_dead_pid()}")

    calls: list = []
    study, ctx, objective, _ = run_search(settings, objective_factory=factory(calls))
    trials = study.trials
    failed = trials[orphan.number]
    assert failed.state == TrialState.FAIL and "interrupted" in failed.user_attrs["fail_reason"]
    retries = [t for t in trials if t.user_attrs.get("retry_of") == orphan.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.params == orphan.params
    assert {k: retry.user_attrs[k] for k in ("promoted_from", "start_rung")} == \
        {k: orphan.user_attrs[k] for k in ("promoted_from", "start_rung")}
    assert objective.trained[0] == retry.number  # the first trial after the resume is the retry
    assert retry.user_attrs[record.RUNGS][-1]["rung"] == 1
    # the study reaches the requested number of configurations; nothing else failed or is left running
    assert trained_configurations(study) == 12
    assert [t.number for t in trials if t.state not in DONE] == [orphan.number]
    assert {n: trials[n].user_attrs.get(record.RUNGS) for n in before} == before
    # the resumed sampler has its own seed: its random start-up draws no configuration the first run drew
    firsts = [_key(t.params) for t in trials if t.state in DONE and "promoted_from" not in t.user_attrs
              and "retry_of" not in t.user_attrs and t.user_attrs.get("feasible") is not False]
    assert len(firsts) == len(set(firsts))
    for t in trials:
        if t.state == TrialState.COMPLETE:
            assert t.values[0] == expected_full(t, ctx)[0]
    # resuming a finished study runs nothing more
    study, _, objective, _ = run_search(settings, objective_factory=factory())
    assert objective.trained == [] and len(study.trials) == len(trials)


# --------------------------------------------------------------------------------------------------
# Warm start
# --------------------------------------------------------------------------------------------------
def _key(params):
    return tuple(sorted(params.items()))


def test_warm_start_enqueues_exactly_the_pareto_configurations(study_a, glue_dir, capsys):
    a, _, _, _, storage, _ = study_a
    front = pareto_front(a)
    n_front = len(front)
    settings = settings_for(glue_dir, storage, "B", n_front + 2, warm_start="A")
    b, ctx, objective, _ = run_search(settings, objective_factory=factory())
    assert f"warm start: queued {n_front} configuration(s) from A" in capsys.readouterr().out
    trials = b.trials
    assert [t.params for t in trials[:n_front]] == [t.params for t in front]
    assert [t.user_attrs["warm_start_from"] for t in trials[:n_front]] == [f"A#{t.number}" for t in front]
    # nothing else was enqueued but ASHA's promotions: later trials are sampled or continue a configuration
    assert all("warm_start_from" not in t.user_attrs and
               ("fixed_params" not in t.system_attrs or "promoted_from" in t.user_attrs) for t in trials[n_front:])
    assert trained_configurations(b) == n_front + 2
    # A is untouched
    assert [t.number for t in pareto_front(optuna.load_study(study_name="A", storage=storage))] == \
        [t.number for t in front]

    # a second call does not enqueue them again
    settings = settings_for(glue_dir, storage, "B", n_front + 3, warm_start="A")
    b, _, _, _ = run_search(settings, objective_factory=factory())
    assert "warm start: queued 0 configuration(s) from A" in capsys.readouterr().out
    assert sum("warm_start_from" in t.user_attrs for t in b.trials) == n_front
    assert trained_configurations(b) == n_front + 3
    assert warm_start(b, "A", storage, ctx.space, ctx.shape.num_layers) == 0
    assert not [t for t in b.trials if t.state == TrialState.WAITING]


def test_warm_start_twice_before_running_enqueues_once(study_a, glue_dir):
    a, ctx, _, _, storage, tmp = study_a
    n_front = len(pareto_front(a))
    c = optuna.create_study(study_name="C", storage=storage, directions=["maximize", "minimize"])
    assert warm_start(c, "A", storage, ctx.space, ctx.shape.num_layers) == n_front
    assert warm_start(c, "A", storage, ctx.space, ctx.shape.num_layers) == 0
    waiting = [t for t in c.trials if t.state == TrialState.WAITING]
    assert len(waiting) == n_front
    assert sorted(_key(t.system_attrs["fixed_params"]) for t in waiting) == \
        sorted(_key(t.params) for t in pareto_front(a))


def test_warm_start_from_another_storage(study_a, glue_dir, fast_tmp, capsys):
    a, _, _, _, storage, _ = study_a
    front = pareto_front(a)
    other = f"sqlite:///{fast_tmp}/other.db"
    settings = settings_for(glue_dir, other, "B2", len(front), warm_start=f"{storage}#A")
    b, _, _, _ = run_search(settings, objective_factory=factory())
    assert f"queued {len(front)} configuration(s)" in capsys.readouterr().out
    started = [t for t in b.trials if "promoted_from" not in t.user_attrs]  # promotions continue them
    assert [t.params for t in started] == [t.params for t in front]
    assert [t.user_attrs["warm_start_from"] for t in started] == [f"A#{t.number}" for t in front]
    assert optuna.get_all_study_names(other) == ["B2"]


@pytest.mark.parametrize("source", ["nope", "{storage}#nope"])
def test_warm_start_from_a_missing_study_is_a_user_error(study_a, glue_dir, fast_tmp, source):
    _, _, _, _, storage, _ = study_a
    settings = settings_for(glue_dir, f"sqlite:///{fast_tmp}/w.db", "W", 2, warm_start=source.format(storage=storage))
    with pytest.raises(UserError, match="nope"):
        run_search(settings, objective_factory=factory())


# --------------------------------------------------------------------------------------------------
# The top rung is the run a user gets: built-ins first, the lr searched, the model kept
# --------------------------------------------------------------------------------------------------
def test_builtins_go_first_at_the_top_rung_once_and_the_suggested_lr_reaches_the_trainer(fast_context, fast_tmp,
                                                                                          glue_dir):
    seen = []

    def trainer(ctx):
        fake = make_fake(ctx)

        def run(task, spec, args, **kw):
            seen.append((args.learning_rate, rung_fraction(ctx, args), kw.get("out_dir")))
            return fake(task, spec, args, model_name=kw.get("model_name"), data_dir=kw.get("data_dir"))
        return Objective(ctx, trainer=run)

    out = fast_tmp / "out"
    settings = settings_for(glue_dir, f"sqlite:///{fast_tmp}/b.db", "B", 9, builtins_first=True, out=str(out))
    study, ctx, objective, _ = run_search(settings, objective_factory=trainer)
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [t.user_attrs.get("builtin") for t in trials[:3]] == ["lor2c", "sharelor2c", "imlor2c"]
    assert sum(1 for t in trials if t.user_attrs.get("builtin")) == 3  # counted once, among the 9
    assert trained_configurations(study) == 9
    for t in trials[:3]:  # straight to the top rung: the trial is that built-in's baseline run
        assert t.state == TrialState.COMPLETE and [r["fraction"] for r in t.user_attrs[record.RUNGS]] == [1.0]
        assert t.params["learning_rate"] == 2e-3
    # every trial's sampled lr is the lr its run trained with; only a top-rung run is given a folder to keep
    lrs = [t.params["learning_rate"] for t in trials if t.user_attrs.get("trained")]
    assert sorted(lr for lr, _, _ in seen) == sorted(lrs)
    assert len({lr for lr, _, _ in seen}) > 3
    for lr, fraction, folder in seen:
        assert (folder is not None) == (fraction == 1.0)
        if folder is not None:
            assert folder.parent == (out / "trials").resolve()


def test_resume_refuses_a_study_begun_with_other_settings_or_trainer_defaults(tmp_path):
    storage = resolve_storage(f"sqlite:///{tmp_path}/s.db", heartbeat=False)
    settings = SearchSettings(task="sst2", budget="0.1M", progress=False)
    study = open_study(settings, storage, "s", "accuracy")
    assert open_study(settings, storage, "s", "accuracy").study_name == "s"  # the same settings resume
    with pytest.raises(UserError, match=r"different settings \(budget\)"):
        open_study(SearchSettings(task="sst2", budget="50K", progress=False), storage, "s", "accuracy")
    # a study begun before the trainer's defaults changed (no or an older trainer version)
    ident = study.user_attrs["identity"]
    study.set_user_attr("identity", dict(ident, trainer=2))
    with pytest.raises(UserError, match=r"different settings \(trainer\)"):
        open_study(settings, storage, "s", "accuracy")
    # one begun when a low rung trained a share of the rows as well as of the steps: its rung scores mean
    # something else
    rows_too = {k: v for k, v in ident["fidelity"].items() if k != "rung"}
    study.set_user_attr("identity", dict(ident, fidelity=rows_too))
    with pytest.raises(UserError, match=r"different settings \(fidelity\)"):
        open_study(settings, storage, "s", "accuracy")
    # with a single rung nothing changed, so such a study still resumes
    single = SearchSettings(task="sst2", budget="0.1M", progress=False, fidelity=Fidelity.off())
    study.set_user_attr("identity", dict(single.identity(), fidelity=Fidelity.off().to_dict()))
    assert open_study(single, storage, "s", "accuracy").study_name == "s"
