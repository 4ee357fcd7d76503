"""Several workers on one study replay exactly: two worker threads with a stub trainer that sleeps a random
time (and one of them slow on its first trial, the other one in the second run), so the trials interleave
differently, end with the same trials: the same parameters in the same trial numbers, the same values and
promotions."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from autolor2c.search import record
from autolor2c.search.front import trained_configurations
from autolor2c.search.run import Objective, run_search
from synthetic_search import make_fake, settings_for

TRIALS = 16  # 9 new configurations reach the top rung once; the sampler models the last ones (8 start it)


def _run(glue_dir, storage: str, name: str, workers: int, slow: int) -> tuple[list, dict[int, list[int]]]:
    """Two worker threads on study ``name`` (``workers``: what each is told the study has); worker ``slow``
    trains its first trial slowly. Returns each trial's record and the trial numbers each worker trained."""
    trained: dict[int, list[int]] = {}
    errors: list[BaseException] = []
    started: list[threading.Thread] = []

    def worker(k: int) -> None:
        rng = random.Random()  # unseeded: each run interleaves its own way
        calls = []

        def objective(ctx):
            fake = make_fake(ctx)

            def trainer(task, spec, args, **kw):
                calls.append(1)  # the slow worker's first trial holds the other one back a while
                time.sleep(rng.uniform(0, 0.03) + (0.0 if k != slow else 1.0 if len(calls) == 1 else 0.1))
                key = json.dumps(spec.to_dict(), sort_keys=True, default=str) + repr(args.learning_rate)
                if int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 5 == 0:  # some configurations fail
                    raise RuntimeError("a failing configuration")
                return fake(task, spec, args, model_name=kw.get("model_name"), data_dir=kw.get("data_dir"))
            return Objective(ctx, trainer=trainer)

        def ready(study) -> None:  # as the CLI: the other worker starts once the study exists
            if k == 0:
                t = threading.Thread(target=worker, args=(1,))
                started.append(t)
                t.start()

        try:
            s = settings_for(glue_dir, storage, name, TRIALS, sampler="parego", seed=3, workers=workers, worker=k)
            _, _, obj, _ = run_search(s, objective_factory=objective, on_study_ready=ready)
            trained[k] = obj.trained
        except BaseException as e:  # noqa: BLE001  (re-raised in the test's thread)
            errors.append(e)

    worker(0)
    for t in started:
        t.join(60)
    assert not errors, errors
    from autolor2c.search.run import resolve_storage
    import optuna

    study = optuna.load_study(study_name=name, storage=resolve_storage(storage, heartbeat=False))
    rows = [(t.number, t.state, t.params, t.values, record.promoted_from(t), record.start_rung(t),
             bool(t.user_attrs.get(record.SURPLUS)), t.user_attrs.get(record.TRAINED)) for t in study.get_trials()]
    return rows, trained, trained_configurations(study)


def test_two_workers_replay_the_same_study_for_the_same_seed(fast_context, fast_tmp, glue_dir):
    a, trained_a, n_a = _run(glue_dir, f"sqlite:///{fast_tmp}/a.db", "W", workers=2, slow=1)
    b, trained_b, _ = _run(glue_dir, f"sqlite:///{fast_tmp}/b.db", "W", workers=2, slow=0)
    assert n_a == TRIALS
    assert trained_a != trained_b  # the workers took different trials ...
    assert a == b                  # ... and the study is the same
    assert TrialState.FAIL in [r[1] for r in a]  # failures do not shift what follows (nor count as trained)
    assert [r[6] for r in a][-2:] == [True, True] and sum(r[6] for r in a) == 2  # each worker ends on one surplus
    assert any(r[4] is not None and r[5] == 2 for r in a)  # ASHA promoted something to the top rung
    assert any(r[7] is False and not r[6] for r in a)  # over-budget trials, which the lag does not count


def test_a_helper_worker_runs_trials_and_writes_no_report(fast_context, fast_tmp, tmp_path, glue_dir):
    """A helper worker that went on to report would leave its report and stage times in the study until the
    first worker finished (or for good, if the first was killed while training the baselines)."""
    from autolor2c.search import search
    from autolor2c.search.fidelity import Fidelity

    out = tmp_path / "studies" / "H"
    settings = dataclasses.replace(settings_for(glue_dir, f"sqlite:///{fast_tmp}/h.db", "H", 4, workers=2, worker=1,
                                                baselines=False, out=str(out)), fidelity=Fidelity.off())

    def run_trials(st):
        study, ctx, _, _ = run_search(st, objective_factory=lambda ctx: Objective(ctx, trainer=make_fake(ctx)))
        return study, ctx

    outcome = search(settings, run_trials=run_trials)
    assert any(t.state == TrialState.COMPLETE for t in outcome.study.get_trials())  # it trained ...
    assert outcome.picked is None and not (out / "report.md").exists()             # ... and reported nothing
    attrs = outcome.study.user_attrs
    assert not {record.VERDICT, record.STAGE_WALL, record.PICK} & set(attrs)


def test_the_fixed_set_leaves_the_lag_in_trials_that_train():
    """A worker may run ahead of the oldest trial still training by L trials that train: one over the budget
    (or surplus) takes no time, so it does not count, and the worker does not idle behind a long run early."""
    from optuna.trial import create_trial

    from autolor2c.search.run.ordered import cutoff, new_configurations

    def t(number, trains, state=TrialState.PRUNED):
        made = create_trial(state=state, user_attrs={record.TRAINED: trains},
                            values=[0.5, 1.0] if state == TrialState.COMPLETE else None)
        made.number = number
        return made

    # trial 0 (a top-rung run) trains; 1-12 are rung-0 trials, four of them over the budget
    over = {2, 4, 6, 9}
    trials = [t(0, True, TrialState.RUNNING)] + [t(m, m not in over) for m in range(1, 13)]
    assert cutoff(trials, 13, 9) == 0      # trials 0-12 hold 9 that train: trial 13 need not wait for trial 0
    assert cutoff(trials, 10, 9) == 0      # fewer than 9 trained above 0: nothing is fixed but what is older
    assert cutoff(trials, 13, 3) == 10 and cutoff(trials, 13, 4) == 8   # the window skips trial 9 (and 4 back to 8)
    assert cutoff(trials, 13, 0) == 13
    every = [t(m, True) for m in range(13)]
    assert cutoff(every, 13, 9) == 4       # all train: the L trials below n, as before
    # a failed trial is dropped from the count of new configurations only once below the cutoff
    trials[11] = t(11, True, TrialState.FAIL)
    assert new_configurations(trials, 13, 3) == new_configurations(trials, 13, 0) + 1


@pytest.mark.parametrize("top", [True, False])
def test_the_last_wait_skips_a_promotion_training_at_the_top_rung(top):
    """Once the study has its configurations, a worker waits for the earlier trials' results to know whether a
    promotion is owed; not for a promotion training at the top rung, whose score no promotion reads: it ends
    at once (surplus) instead of idling through the study's longest run. A promotion to a lower rung is waited
    for, as its score can make one owed."""
    from autolor2c.search.fidelity import Fidelity
    from autolor2c.search.run.ordered import OrderedSampler

    study = optuna.create_study(directions=["maximize", "minimize"])
    for score in (0.8, 0.6, 0.5):  # three new configurations at rung 0; the best (trial 0) is owed rung 1
        t = study.ask()
        for k, v in {record.TRAINED: True, record.RUNGS: [{"rung": 0, "score": score, "params": 100.0}]}.items():
            t.set_user_attr(k, v)
        study.tell(t, state=TrialState.PRUNED)
    running = study.ask()  # trial 0 continued: at the top rung, or at rung 1
    for k, v in {record.PROMOTED_FROM: 0, record.START_RUNG: 2 if top else 1, record.TRAINED: True}.items():
        running.set_user_attr(k, v)
    sampler = OrderedSampler(lambda seed: optuna.samplers.RandomSampler(seed), workers=2, seed=0,
                             fidelity=Fidelity((1 / 9, 1 / 3, 1.0), 3.0), target=3)
    new = study._storage.get_trial(study._storage.create_new_trial(study._study_id))
    decide = threading.Thread(target=sampler.before_trial, args=(study, new), daemon=True)
    decide.start()
    decide.join(1.0)
    assert decide.is_alive() is not top
    if not top:  # rung 1's one score owes no promotion (fewer than eta there): the worker ends once it is in
        running.set_user_attr(record.RUNGS, [{"rung": 1, "score": 0.85, "params": 100.0}])
        study.tell(running, state=TrialState.PRUNED)
        decide.join(10)
        assert not decide.is_alive()
    assert new.user_attrs.get(record.SURPLUS) is True


class _FakeHelpers:
    """One helper worker (pipeline.Helpers) whose last trial ends when ``end`` is set."""

    def __init__(self):
        self.log: list[str] = []
        self.end = threading.Event()

    def release(self) -> None:
        self.log.append("release")

    def busy_cores(self) -> int:
        return 0 if self.end.is_set() else 1

    def wait(self) -> float:
        self.log.append("wait")
        self.end.wait(30)
        return time.time()


@pytest.mark.parametrize("first_to_end", ["helper", "this worker", "none: one process trains the seeds"])
def test_the_baselines_start_on_the_cores_a_worker_frees_while_others_finish(fast_context, fast_tmp, tmp_path,
                                                                            glue_dir, monkeypatch, first_to_end):
    """Once one worker has no trial left and another still trains its last one (a top-rung run can take half
    an hour), the baselines' seeds train on the free core, then on every core once the last trial ends;
    where one process would train the seeds in turn (OMP_NUM_THREADS pinned, a GPU), they train after the
    trials, as before."""
    import autolor2c.search.pipeline as pipeline_mod
    from autolor2c.search import search
    from autolor2c.search.fidelity import Fidelity

    helpers = _FakeHelpers()
    free_seen: list[int] = []
    trials_seen: list[int] = []

    def baselines(study, ctx, seeds, progress, free_cores=None):
        helpers.log.append("baselines")
        trials_seen.append(len(study.get_trials(deepcopy=False)))
        if free_cores is not None:
            free_seen.append(free_cores())
            helpers.end.set()           # the helper's last trial ends while the seeds train
            deadline = time.time() + 20
            while free_cores() < 2 and time.time() < deadline:
                time.sleep(0.01)
            free_seen.append(free_cores())
        return []

    real = pipeline_mod.run_search

    def run_search_(st, **kw):   # the synthetic trainer; the helper's trial ends at this worker's 3rd trial
        def objective(ctx):
            fake = make_fake(ctx)

            def trainer(*a, **k):
                if first_to_end == "helper" and len(ctx_calls) == 2:
                    deadline = time.time() + 20
                    while "baselines" not in helpers.log and time.time() < deadline:
                        time.sleep(0.01)   # this worker's trial trains on while the seeds start beside it
                ctx_calls.append(1)
                return fake(*a, **k)
            return Objective(ctx, trainer=trainer)
        return real(st, objective_factory=objective, **kw)

    ctx_calls: list[int] = []
    monkeypatch.setattr(pipeline_mod, "train_baselines", baselines)
    monkeypatch.setattr(pipeline_mod, "run_search", run_search_)
    monkeypatch.setattr(pipeline_mod, "POLL_S", 0.01)
    monkeypatch.setattr(pipeline_mod, "available_cores", lambda: 2)
    monkeypatch.setattr(pipeline_mod, "threads_per_worker", lambda workers: 1)
    monkeypatch.setattr(pipeline_mod, "parallel_workers", lambda n: 1 if first_to_end.startswith("none") else 2)
    if first_to_end == "helper":
        helpers.end.set()
    settings = dataclasses.replace(
        settings_for(glue_dir, f"sqlite:///{fast_tmp}/b.db", "B", 5, workers=2, out=str(tmp_path / "o"),
                     builtins_first=True), fidelity=Fidelity.off())
    outcome = search(settings, helpers=helpers)
    stages = outcome.study.user_attrs[record.STAGE_WALL]
    if first_to_end == "helper":       # it started while this worker still trained trials, on one core
        assert helpers.log == ["baselines", "release", "wait"] and free_seen[0] == 1
        assert trials_seen[0] < len(outcome.study.trials)
    elif first_to_end == "this worker":
        assert helpers.log == ["release", "wait", "baselines"] or helpers.log[:2] == ["release", "baselines"]
        assert free_seen == [1, 2]     # one core while the helper trains, then both
    else:
        assert helpers.log == ["release", "wait", "baselines"] and not free_seen
    assert ("baselines_beside_trials" in stages) == (not first_to_end.startswith("none"))
    assert outcome.picked is not None
