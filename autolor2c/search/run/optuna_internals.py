"""Every use of Optuna's private internals, in one place (a test keeps it so). Each helper says why the public
API does not do; an Optuna upgrade that breaks one of them breaks it here, with a name.

Optuna identifies a trial in its storage by ``trial_id`` (not the public ``number``) and keeps a trial's
parameters-to-be and its owner in "system attrs", which it no longer lets a ``Trial`` set.
"""

from __future__ import annotations

import time
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

WORKER_ATTR = "autolor2c:worker"  # host:pid of the process running a trial (a system attr: not in trials.csv)
BEAT_ATTR = "autolor2c:beat"  # when that process last said it lives (time.time()), on storages without heartbeats


def set_worker(trial: optuna.Trial, worker: str) -> None:
    """Record which process runs ``trial``, so a resume can tell a dead worker's RUNNING trial from a live one.
    Why private: ``Trial.set_system_attr`` was removed; a user attr would show in every report and dataframe."""
    trial.storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker)


def beat(trial: optuna.Trial) -> None:
    """Record that ``trial``'s process lives now (a journal file has no heartbeats). Why private: as set_worker."""
    trial.storage.set_trial_system_attr(trial._trial_id, BEAT_ATTR, time.time())


def last_beat(trial: FrozenTrial) -> float | None:
    """When :func:`beat` last ran for ``trial``; None if never (an RDB storage, or an older study)."""
    return trial.system_attrs.get(BEAT_ATTR)


def worker_of(trial: FrozenTrial) -> str:
    """The ``host:pid`` :func:`set_worker` recorded, or ``""``."""
    return trial.system_attrs.get(WORKER_ATTR, "")


def frozen_trial(study: optuna.Study, number: int) -> FrozenTrial:
    """Trial ``number`` of ``study``, fresh from the storage.
    Why private: the public ``study.get_trials()`` reads every trial to find one."""
    storage = study._storage
    return storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study._study_id, number))


def live_trial(study: optuna.Study, number: int) -> optuna.Trial:
    """A ``Trial`` handle on an unfinished trial that another process asked for (a Ray driver asks, a worker runs).
    Why private: ``Trial`` is built from a storage trial id; ``study.ask()`` only makes new trials."""
    return optuna.Trial(study, study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number))


def create_running_trial(study: optuna.Study, template: FrozenTrial) -> optuna.Trial:
    """A new RUNNING trial with ``template``'s parameters, already owned by the caller.
    Why private: ``study.enqueue_trial`` makes a WAITING trial that any ``study.ask()`` can take first."""
    return optuna.Trial(study, study._storage.create_new_trial(study._study_id, template_trial=template))


def fail_trial(study: optuna.Study, trial: FrozenTrial, reason: str) -> None:
    """End another process's RUNNING trial as FAIL with ``fail_reason``.
    Why private: ``study.tell(number, state=FAIL)`` can end it but leaves no way to record why."""
    study._storage.set_trial_user_attr(trial._trial_id, "fail_reason", reason)
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)


def queued_params(trial: FrozenTrial) -> dict[str, Any]:
    """The parameters a WAITING (enqueued) trial will run with.
    Why private: Optuna keeps them in the system attr ``fixed_params`` until the trial starts."""
    return trial.system_attrs.get("fixed_params", {})


def artifact_metadata(study: optuna.Study) -> dict[str, Any]:
    """Where ``optuna.artifacts`` keeps each artifact's metadata: the study's system attrs (``artifacts:<id>``,
    ``"null"`` once deleted in the dashboard). Why private: no public call lists a study's artifacts."""
    return study._storage.get_study_system_attrs(study._study_id)


__all__ = ["WORKER_ATTR", "artifact_metadata", "create_running_trial", "fail_trial", "frozen_trial", "live_trial",
           "queued_params", "set_worker", "worker_of", "beat", "last_beat"]


def set_starting_user_attr(study: optuna.Study, trial: FrozenTrial, key: str, value: Any) -> None:
    """A user attr of a trial being created, from ``sampler.before_trial`` (run/ordered.py), before any
    ``optuna.Trial`` method can set one. Why private: the trial's id, and the FrozenTrial the new
    ``optuna.Trial`` keeps reading its user attrs from is the one given to ``before_trial``."""
    study._storage.set_trial_user_attr(trial._trial_id, key, value)
    trial.user_attrs[key] = value


def fix_starting_params(study: optuna.Study, trial: FrozenTrial, params: dict[str, Any]) -> None:
    """Make a trial being created take ``params``, as an enqueued trial does (run/ordered.py decides a promotion
    only once the trial exists). Why private: ``fixed_params`` is the system attr ``enqueue_trial`` writes,
    and ``optuna.Trial`` reads it from the FrozenTrial given to ``before_trial``, right after that call."""
    study._storage.set_trial_system_attr(trial._trial_id, "fixed_params", params)
    trial.system_attrs["fixed_params"] = params
