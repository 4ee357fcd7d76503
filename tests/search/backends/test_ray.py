"""The Ray Tune backend on a real local Ray instance (2 CPUs): a small search end to end, results in the
same Optuna storage, and the same search resumed after its driver is killed.

Ray starts once: the searches run in this process on the session's instance (``ray_instance``); only the
driver the kill drill kills runs in a process of its own (with its own instance, which dies with it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

pytest.importorskip("ray")

from autolor2c.cli import main  # noqa: E402
from autolor2c.search.front import trained_configurations  # noqa: E402

DONE = (TrialState.COMPLETE, TrialState.PRUNED)


def _argv(db, out, glue_dir, trials, seeds="0", fidelity=()):
    # a 10-step top rung is too short for the automatic rungs: two explicit ones, and no built-ins at the top,
    # so configurations go through ASHA as in a long search
    fidelity = fidelity or ("--fidelity-rungs", "0.333,1")
    return ["search", "--backend", "ray", "--ray-num-cpus", "2",
            "--max-concurrent", "1", "--task", "sst2", "--budget", "1M", "--trials", str(trials), "--seeds", seeds,
            "--no-builtins-first", "--no-baselines", "--storage", f"sqlite:///{db}", "--study-name", "r", "--out", str(out),
            "--data-dir", str(glue_dir), "--min-steps", "0", "--max-train-samples", "300", "--max-eval-samples", "32", "--max-length", "24",
            *fidelity, "--no-progress", "--sampler", "random"]


def _env():
    return {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


def test_reopen_trial_after_a_driver_kill(tmp_path):
    """What a Ray trial re-run by Tune's restore does with its Optuna trial, in each state the kill can leave."""
    from autolor2c.search.backends import reopen_trial

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'o.db'}", directions=["maximize", "minimize"])
    running = study.ask()
    running.suggest_int("rank", 2, 8)
    trial, is_retry, _ = reopen_trial(study, running.number)
    assert trial._trial_id == running._trial_id and not is_retry

    interrupted = study.ask()
    rank = interrupted.suggest_int("rank", 2, 8)
    lr = interrupted.suggest_float("lr", 1e-4, 1e-2, log=True)
    study._storage.set_trial_user_attr(interrupted._trial_id, "fail_reason", "interrupted: worker h:1 is gone")
    study._storage.set_trial_state_values(interrupted._trial_id, TrialState.FAIL)
    trial, is_retry, _ = reopen_trial(study, interrupted.number)
    assert is_retry and trial.number not in (running.number, interrupted.number)
    assert trial.suggest_int("rank", 2, 8) == rank and trial.suggest_float("lr", 1e-4, 1e-2, log=True) == lr
    assert study.trials[trial.number].user_attrs["retry_of"] == interrupted.number
    assert study.trials[trial.number].state == TrialState.RUNNING  # not WAITING: the driver's ask cannot take it

    finished = study.ask()
    finished.suggest_int("rank", 2, 8)
    study.tell(finished, [0.8, 100.0])
    n_before = len(study.trials)
    trial, is_retry, recorded = reopen_trial(study, finished.number)
    assert trial is None and recorded.values == [0.8, 100.0] and len(study.trials) == n_before

    failed = study.ask()
    failed.suggest_int("rank", 2, 8)
    study._storage.set_trial_user_attr(failed._trial_id, "fail_reason", "RuntimeError: loss is NaN")
    study.tell(failed, state=TrialState.FAIL)
    trial, _, _ = reopen_trial(study, failed.number)
    assert trial is None and len(study.trials) == n_before + 1  # a real failure is not re-run


def test_a_finished_trial_rerun_by_tunes_restore_reports_its_record():
    """Tune's restore re-runs Ray trials whose end it did not checkpoint; their Optuna trials may have ended
    PRUNED (paused at a rung, or over budget) or FAIL: each must still give Tune the metrics it checks for
    (found by the multi-fidelity kill drill: a paused trial reported nothing and the resumed driver died)."""
    from optuna.distributions import IntDistribution

    from autolor2c.search.backends.ray_tune import _recorded_result

    base = dict(params={"rank": 4}, distributions={"rank": IntDistribution(2, 8)})
    done = optuna.trial.create_trial(state=TrialState.COMPLETE, values=[0.8, 100.0], **base)
    assert _recorded_result(done, "accuracy") == {"accuracy": 0.8, "trainable_params": 100.0}
    paused = optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs={
        "rungs": [{"rung": 0, "score": 0.7}], "planned_params": {"final": 64}}, **base)
    r = _recorded_result(paused, "accuracy")
    assert r["accuracy"] == 0.7 and r["trainable_params"] == 64.0 and r["pruned"] is True
    over = optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs={"planned_params": {"final": 10**9}}, **base)
    failed = optuna.trial.create_trial(state=TrialState.FAIL, **base)
    for t in (over, failed):
        r = _recorded_result(t, "accuracy")
        assert {"accuracy", "trainable_params"} <= set(r) and r["accuracy"] != r["accuracy"]  # nan, not a made-up score
    assert _recorded_result(failed, "accuracy")["failed"] is True


def test_ray_search_end_to_end(tmp_path, glue_dir, ray_instance, capsys):
    db = tmp_path / "r.db"
    # the defaults, multi-fidelity included: paused trials end PRUNED with their rung scores, and ASHA's
    # promotion of the best of three runs as its own Ray trial
    assert main(_argv(db, tmp_path / "out", glue_dir, trials=3, seeds="1", fidelity=())) == 0, capsys.readouterr()
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{db}")
    assert study.metric_names == ["accuracy", "trainable_params"]
    assert trained_configurations(study) == 3 and all(t.state in DONE for t in study.trials)
    # set up by the same prepare_study as the Optuna backend: retrain/export find the model, data and space
    assert {"identity", "model_arg", "data_dir", "space_path", "budget_params", "trivial_score"} <= set(study.user_attrs)
    assert study.user_attrs["data_dir"] == str(glue_dir.resolve())
    trained = [t for t in study.trials if t.user_attrs.get("trained")]
    for t in trained:  # our objective ran in the Ray workers: its records are on the Optuna trials
        assert "plan" in t.user_attrs and t.user_attrs["rungs"] and t.user_attrs["cost_s"] > 0
    paused = [t for t in trained if t.state == TrialState.PRUNED]
    assert paused and all(t.values is None and t.user_attrs["rungs"][-1]["score"] is not None for t in paused)
    promoted = [t for t in study.trials if "promoted_from" in t.user_attrs]
    assert len(promoted) == 1 and promoted[0].state == TrialState.COMPLETE
    assert (tmp_path / "out" / "adapter" / "lor2c_model.safetensors").is_file()
    assert (tmp_path / "out" / "report.md").is_file()


def _kill_when(cmd: list[str], storage: str, ready) -> bool:
    """Run ``cmd`` and SIGKILL it (the driver and the Ray instance it started) once ``ready(trials)``;
    False if it finished first."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                            start_new_session=True)
    deadline = time.time() + 600
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.5)
            try:
                trials = optuna.load_study(study_name="r", storage=storage).trials
            except Exception:
                continue
            if ready(trials):
                os.killpg(proc.pid, signal.SIGKILL)
                return True
        return False
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_ray_search_resumes_after_the_driver_is_killed(tmp_path, glue_dir, ray_instance, capsys):
    """The kill/resume drill with the defaults (multi-fidelity on): what finished before the kill stays as it
    was (paused trials PRUNED with their rung scores), the same command restores the Tune experiment and
    reaches --trials configurations with the interrupted trials failed and re-run, and a larger --trials
    later is a new Tune experiment on the same study."""
    db, out = tmp_path / "m.db", tmp_path / "out"
    storage = f"sqlite:///{db}"
    argv = _argv(db, out, glue_dir, trials=4)
    killed = _kill_when([sys.executable, "-m", "autolor2c.cli", *argv], storage,
                        lambda trials: any(t.state in DONE for t in trials)
                        and len([t for t in trials if t.state in DONE]) < 4)
    assert killed, "the search finished before it could be killed"
    before = {t.number: (t.state, t.params, t.values, t.user_attrs.get("rungs"))
              for t in optuna.load_study(study_name="r", storage=storage).trials if t.state in DONE}

    assert main(argv) == 0  # the same command, resumed (its driver in this process)
    assert "resuming the Ray experiment" in capsys.readouterr().out
    study = optuna.load_study(study_name="r", storage=storage)
    by_number = {t.number: t for t in study.trials}
    for n, (state, params, values, rungs) in before.items():
        t = by_number[n]
        assert (t.state, t.params, t.values, t.user_attrs.get("rungs")) == (state, params, values, rungs)
    assert trained_configurations(study) >= 4
    assert not [t for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    interrupted = [t for t in study.trials if t.state == TrialState.FAIL]
    assert all("interrupted" in t.user_attrs.get("fail_reason", "") for t in interrupted)
    numbers = [t.number for t in interrupted]
    assert all(t.user_attrs["retry_of"] in numbers for t in study.trials if "retry_of" in t.user_attrs)
    paused = [t for t in study.trials if t.state == TrialState.PRUNED and t.user_attrs.get("trained")]
    assert paused and all(t.user_attrs["rungs"][-1]["score"] is not None for t in paused)
    # A later Tune experiment's sampler must not draw again what the first one drew (a seeded random start-up).
    firsts = [tuple(sorted(t.params.items())) for t in study.trials
              if t.user_attrs.get("trained") and "promoted_from" not in t.user_attrs]
    assert len(firsts) == len(set(firsts)), "a configuration was trained twice as a new trial"

    # a larger --trials after the experiment finished: a new Tune experiment on the same study, no restore
    trials, experiments = trained_configurations(study) + 1, study.user_attrs["ray_experiments"]
    assert main(_argv(db, out, glue_dir, trials=trials)) == 0
    assert "resuming the Ray experiment" not in capsys.readouterr().out
    study = optuna.load_study(study_name="r", storage=storage)
    assert trained_configurations(study) == trials
    assert study.user_attrs["ray_experiments"] == study.user_attrs["ray_experiments_finished"] > experiments
    assert (out / "ray" / f"r-{experiments + 1}").is_dir()


def test_ray_search_with_only_a_timeout(tmp_path, glue_dir, ray_instance, capsys):
    """--timeout without --trials: Tune's time budget; the trial it stops is closed, not left RUNNING."""
    db = tmp_path / "t.db"
    argv = _argv(db, tmp_path / "out", glue_dir, trials=1)
    i = argv.index("--trials")
    del argv[i:i + 2]
    rc = main(argv + ["--timeout", "20"])
    # 20 s may end before any configuration reaches the top rung: then the search says so and exits 1
    err = capsys.readouterr().err
    assert rc == 0 or (rc == 1 and "trained nothing to pick from" in err), err[-3000:]
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{db}")
    assert study.trials and not [t for t in study.trials if t.state == TrialState.RUNNING]
    for t in study.trials:
        assert t.state in DONE or "stopped by Ray Tune" in t.user_attrs["fail_reason"]


@pytest.fixture(scope="module")
def tiny_bert_folder(tmp_path_factory, minilm_path):
    """A small random BERT saved as a model folder (with the embedded model's tokenizer): a --model that is
    not the default, so a fall-back to the default model shows."""
    import transformers as tf

    folder = tmp_path_factory.mktemp("models") / "tiny-bert"
    tokenizer = tf.AutoTokenizer.from_pretrained(str(minilm_path))
    cfg = tf.BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id)
    tf.BertForSequenceClassification(cfg).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_both_backends_set_a_study_up_alike(tmp_path, glue_dir, tiny_bert_folder, ray_instance, monkeypatch, capsys):
    """The same tiny search on the Optuna and the Ray backend: the same study attributes, and `retrain` of
    either study trains the search's --model (not the default one)."""
    import dataclasses

    import autolor2c.search.results.retrain as retrain_mod

    common = ["search", "--task", "sst2", "--budget", "1M", "--trials", "2", "--seeds", "0", "--no-baselines",
              "--model", str(tiny_bert_folder), "--data-dir", str(glue_dir), "--min-steps", "0",
              "--max-train-samples", "64", "--max-eval-samples", "32", "--max-length", "24", "--no-multi-fidelity",
              "--sampler", "random", "--no-progress"]
    studies = {}
    for backend in ("optuna", "ray"):
        storage = f"sqlite:///{tmp_path / backend}.db"
        argv = [*common, "--storage", storage, "--study-name", backend, "--out", str(tmp_path / backend)]
        if backend == "ray":
            argv += ["--backend", "ray", "--ray-num-cpus", "2", "--max-concurrent", "1"]
        assert main(argv) == 0
        studies[backend] = optuna.load_study(study_name=backend, storage=storage)

    setup = ("identity", "model_arg", "data_dir", "space_path", "space", "budget_params", "backbone_params",
             "trivial_score")
    optuna_attrs, ray_attrs = ({k: studies[b].user_attrs.get(k) for k in setup} for b in ("optuna", "ray"))
    assert optuna_attrs == ray_attrs and optuna_attrs["model_arg"] == str(tiny_bert_folder)
    assert studies["optuna"].metric_names == studies["ray"].metric_names == ["accuracy", "trainable_params"]
    assert studies["optuna"].directions == studies["ray"].directions

    # a second seed of each study's pick (on a slice: the run's own default is the whole training set)
    models = []
    real_train = retrain_mod.train

    def recording_train(task, spec, args, *, model_name=None, **kw):
        models.append(model_name)
        return real_train(task, spec, dataclasses.replace(args, max_train_samples=64, max_eval_samples=32),
                          model_name=model_name, **kw)

    monkeypatch.setattr(retrain_mod, "train", recording_train)
    for backend in ("optuna", "ray"):
        assert main(["retrain", "--study", backend, "--storage", f"sqlite:///{tmp_path / backend}.db", "--seeds", "2",
                     "--no-progress"]) == 0
    capsys.readouterr()
    assert models == [str(tiny_bert_folder)] * 2
    for backend in ("optuna", "ray"):
        meta = json.loads((tmp_path / backend / "adapter" / "autolor2c.json").read_text())
        assert meta["model"] == str(tiny_bert_folder)
