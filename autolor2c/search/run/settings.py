"""The search's settings: one home for every search default, the one function that turns them into a run's
training arguments, and the checks that run before anything is created.

The top rung of a search *is* the run ``autolor2c train`` makes with the same defaults (on the training rows
minus the selection split), so the best trial is a model a user can ship; lower rungs are fractions of it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from autolor2c.errors import UserError

from ..fidelity import Fidelity
from ..front import PICKS

DEFAULT_STORAGE = "sqlite:///studies/autolor2c.db"
SAMPLERS = ("parego", "tpe", "gp", "nsga2", "random")
# The lowest rung: optimiser steps. bench/speed/min_resource.py measures where the hand-set run leaves the
# input-blind score on SST-2, MRPC and STS-B; this is at or above that point on all three.
MIN_RUNG_STEPS = 200


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class SearchSettings:
    """Everything one search is: task and data, space and budget, trial size and fidelity, storage, pick.

    ``None`` in a training setting means the library's default (``autolor2c.train.TrainArgs``), so a
    search's top rung trains exactly what ``autolor2c train`` trains.
    """

    task: str = field(default="sst2", metadata=_help(
        "GLUE task (cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli)"))
    budget: str = field(default="0.1M", metadata=_help(
        "trainable adapter params: 0.1M, 100K, 100000, 1e5 or 0.5% of the backbone"))
    model: str | None = field(default=None, metadata=_help(
        "hub id or local folder (default: the embedded all-MiniLM-L6-v2)"))
    data_dir: str | None = field(default=None, metadata=_help(
        "GLUE distribution layout (DIR/SST-2/train.tsv ...); default $AUTOLOR2C_DATA_DIR, else the Hugging Face hub"))
    space: str | None = field(default=None, metadata=_help(
        "search-space YAML, or a shipped one: lor2c_full, lor2c_only, lora (default lor2c_full)"))
    storage: str | None = field(default=None, metadata=_help(
        f"Optuna storage URL or journal:FILE (default $AUTOLOR2C_STORAGE, else {DEFAULT_STORAGE})"))
    study_name: str | None = field(default=None, metadata=_help(
        "study to create or continue (default <task>-<model>-b<budget>-<space>, "
        "e.g. sst2-all-MiniLM-L6-v2-b0.1M-lor2c_full)"))
    # TPE on a ParEGO view that sees pruned trials' rung scores (sampler.py): Optuna's own samplers learn
    # nothing from pruned trials in a two-objective study.
    sampler: str = field(default="parego", metadata=_help(
        "parego: TPE on a ParEGO scalarisation that learns from pruned trials' rung scores; "
        "tpe/gp/nsga2/random: Optuna's own, which see full-fidelity trials only"))
    seed: int = field(default=0, metadata=_help(
        "seed of the sampler and of the trials' training; seed k of a configuration (its extra runs) trains with "
        "this + k"))
    trials: int | None = field(default=20, metadata=_help(
        "configurations to train in the study (the built-ins tried first count; promotions and over-budget "
        "ones do not)"))
    timeout: float | None = field(default=None, metadata=_help("seconds for this run's trials (default: no limit)"))
    builtins_first: bool = field(default=True, metadata=_help(
        "start the study with the built-in configurations the space can express and the budget fits"))
    epochs: float | None = field(default=None, metadata=_help(
        "epochs of the top rung, the full run (default: the library's, 1)"))
    max_train_samples: int | None = field(default=None, metadata=_help(
        "training examples of the top rung (default: all, the run a user gets; fewer make a cheaper, "
        "noisier search)"))
    max_eval_samples: int | None = field(default=None, metadata=_help(
        "validation examples a trial is scored on (default: all)"))
    max_length: int | None = field(default=None, metadata=_help("tokens per example (default: the library's, 128)"))
    batch_size: int | None = field(default=None, metadata=_help(
        "examples per optimiser step (default: the library's, 32)"))
    min_steps: int | None = field(default=None, metadata=_help(
        "optimiser steps of the top rung, at least (default: the library's, 2400)"))
    backbone_dropout: float | None = field(default=0.0, metadata=_help(
        "dropout inside the frozen model, in trials and retrains (0: off)"))
    precision: str = field(default="fp32", metadata=_help(
        "fp32, or bf16 autocast in trials and retrains (only on a CPU with native bf16: avx512_bf16 or amx_bf16; "
        "its quality is not measured yet)"))
    selection_fraction: float = field(default=0.1, metadata=_help(
        "training rows held out to score trials and pick checkpoints on, at most 2000 (0: none, the dev set "
        "instead)"))
    # None: rungs from (min_rung_steps, the full run's steps, reduction_factor), as Hyperband sets them.
    fidelity: Fidelity | None = field(default=None, metadata=_help(
        "rungs as fractions of the full run, e.g. 0.111,0.333,1 (default: from the lowest rung's steps and the "
        "reduction factor, as Hyperband sets them)"))
    oneshot: bool = field(default=False, metadata=_help(
        "add a one-shot rung below the real ones: each new configuration is first scored inside a super-adapter "
        "trained once per task, model, space, budget and data (cached), in seconds; ASHA promotes the top 1/eta "
        "to the real rungs (lor2c spaces; bench/results/oneshot_rank.md measures how well it ranks)"))
    min_rung_steps: int = field(default=MIN_RUNG_STEPS, metadata=_help(
        "optimiser steps of the lowest rung; a full run shorter than eta times this turns multi-fidelity off"))
    reduction_factor: float = field(default=3.0, metadata=_help(
        "successive-halving (ASHA) eta: the top 1/eta of a rung is promoted"))
    seeds: int = field(default=3, metadata=_help(
        "seeds of the pick and of each smaller candidate the pick rule checks (the trial is seed 0; 0 or 1: no "
        "extra run)"))
    baselines: bool = field(default=True, metadata=_help(
        "train the head alone and the built-ins the space cannot express (LoRA) beside the front, for "
        "comparison (cached across searches)"))
    baseline_seeds: int = field(default=3, metadata=_help(
        "seeds of every baseline, the built-ins' trial as seed 0, trained once per task, model, data and "
        "training arguments and cached across searches; their spread is the seed noise the pick uses (below 2, "
        "or with --no-baselines: the best trial's --seeds measure it)"))
    pick: str = field(default="smallest-tied", metadata=_help(
        "smallest-tied: the fewest params within the measured seed noise of the best, the tie rechecked "
        "over the pick's own seeds (each refuted candidate costs its seeds); best; knee"))
    out: str | None = field(default=None, metadata=_help("artifacts folder (default studies/<study>)"))
    warm_start: str | None = field(default=None, metadata=_help(
        "STUDY or STORAGE_URL#STUDY whose Pareto configurations start this one (default none)"))
    workers: int = field(default=1, metadata=_help(
        "processes running this study's trials on this machine, the cores split between them; the study replays "
        "exactly for a given --seed and number of workers (default: 2 on a CPU with 2 or more cores, else 1; "
        "the library's: 1)"))
    worker: int = field(default=0, metadata=_help(
        "this process's index among the study's workers, which seeds its sampler apart (0: the first)"))
    progress: bool = field(default=True, metadata=_help("show progress bars"))
    max_consecutive_failures: int = field(default=5, metadata=_help("failed trials in a row that stop the search"))

    # ---- identity ----------------------------------------------------------------------------------
    def space_path(self) -> str:
        from ..space import default_space_path

        return str(self.space) if self.space else str(default_space_path())

    def fidelity_spec(self) -> dict[str, Any]:
        spec = self.fidelity.to_dict() if self.fidelity is not None else {
            "min_rung_steps": self.min_rung_steps, "eta": self.reduction_factor}
        if self.fidelity is None or self.fidelity.enabled:
            # what a low rung shares of the full run (once its rows too): a study begun with the old rungs
            # is not continued with these
            spec = {**spec, "rung": "steps"}
        return {**spec, "oneshot": True} if self.oneshot else spec  # absent when off: older studies still match

    def identity(self) -> dict[str, Any]:
        """What must match for a resumed study to be the same search."""
        from autolor2c.train import TRAINER_VERSION, model_label

        return {"task": self.task, "model": model_label(self.model), "budget": self.budget,
                "space": Path(self.space_path()).name, "epochs": self.epochs,
                "max_train_samples": self.max_train_samples, "max_length": self.max_length, "min_steps": self.min_steps,
                "batch_size": self.batch_size, "fidelity": self.fidelity_spec(), "trainer": TRAINER_VERSION,
                "backbone_dropout": self.backbone_dropout, "selection_fraction": self.selection_fraction,
                # only when not the default, so studies begun before the setting existed still resume
                **({"precision": self.precision} if self.precision != "fp32" else {})}

    @classmethod
    def from_identity(cls, ident: dict[str, Any], **overrides: Any) -> "SearchSettings":
        """The settings a recorded study was run with (the inverse of ``identity()``), for retrain/export."""
        fid = ident.get("fidelity") or {}
        fidelity = Fidelity(tuple(fid["fractions"]), fid.get("eta", 3.0)) if "fractions" in fid else None
        kw = dict(task=ident["task"], budget=ident["budget"], epochs=ident.get("epochs"),
                  max_train_samples=ident.get("max_train_samples"), max_length=ident.get("max_length"),
                  min_steps=ident.get("min_steps"), batch_size=ident.get("batch_size"),
                  backbone_dropout=ident.get("backbone_dropout", 0.0),
                  selection_fraction=ident.get("selection_fraction", 0.0), precision=ident.get("precision", "fp32"),
                  fidelity=fidelity,
                  min_rung_steps=fid.get("min_rung_steps", MIN_RUNG_STEPS), reduction_factor=fid.get("eta", 3.0),
                  oneshot=bool(fid.get("oneshot", False)))
        kw.update(overrides)
        return cls(**kw)

    def storage_url(self) -> str:
        return self.storage or os.environ.get("AUTOLOR2C_STORAGE") or DEFAULT_STORAGE

    def out_dir(self, study_name: str) -> Path:
        """Where a study's artifacts go (``--out``, else ``studies/<study>``)."""
        return Path(self.out) if self.out else Path("studies") / study_name

    # ---- training arguments ------------------------------------------------------------------------
    def train_args(self, plan_train: dict[str, Any] | None = None, *, n_full: int | None = None,
                   fraction: float = 1.0, seed: int | None = None, progress: bool = False):
        """Training arguments of a rung: ``fraction`` 1 is the top rung, the run ``autolor2c train`` makes
        (also every extra seed of the pick); below 1 a share of its steps on the same rows (``n_full``: the
        top rung's rows), evaluated once at its end and without the dev set."""
        from autolor2c.train import training_args

        common = dict(batch_size=self.batch_size, max_length=self.max_length, max_eval_samples=self.max_eval_samples,
                      min_steps=self.min_steps, epochs=self.epochs, backbone_dropout=self.backbone_dropout,
                      selection_fraction=self.selection_fraction, seed=self.seed if seed is None else seed,
                      precision=self.precision, progress=progress)
        if fraction >= 1:
            return training_args(plan_train, max_train_samples=self.max_train_samples, **common)
        if n_full is None:
            raise ValueError("a low rung needs n_full, the top rung's training rows")
        return training_args(plan_train, fraction=fraction, max_train_samples=n_full, score_dev=False, max_evals=1,
                             **common)

    def resolve_fidelity(self, full_steps: int) -> tuple[Fidelity, str | None]:
        """The rungs for a top rung of ``full_steps`` steps, and a one-line note when multi-fidelity is off
        because the run is too short for it."""
        if self.fidelity is not None:
            return (self.fidelity.with_oneshot() if self.oneshot else self.fidelity), None
        fid = Fidelity.for_run(full_steps, self.min_rung_steps, self.reduction_factor)
        if self.oneshot:
            return fid.with_oneshot(), None
        if fid.enabled:
            return fid, None
        return fid, (f"multi-fidelity off: the full run is {full_steps} steps, less than {self.reduction_factor:g} x "
                     f"the lowest rung's {self.min_rung_steps} steps (every trial trains the full run)")

    # ---- checks before anything is created -----------------------------------------------------------
    def validate(self) -> "SearchSettings":
        """Every value checked before a study, a model or a dataset is touched; a bad one is a UserError that
        names it. Training values are checked by building a low and a top rung's arguments."""
        from ..space import parse_budget

        def bad(name: str, why: str) -> UserError:
            return UserError(why, param=name, value=getattr(self, name))

        if self.task == "custom":
            raise bad("task", "a search takes a GLUE task; a custom task's own data files train with "
                      "`autolor2c train` only")
        if self.sampler not in SAMPLERS:
            raise bad("sampler", f"choose one of {', '.join(SAMPLERS)}")
        if self.pick not in PICKS:
            raise bad("pick", f"choose one of {', '.join(PICKS)}")
        for name, low in (("trials", 1), ("seeds", 0), ("baseline_seeds", 1), ("min_rung_steps", 1), ("seed", 0),
                          ("worker", 0), ("workers", 1), ("max_consecutive_failures", 1)):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < low):
                raise bad(name, f"must be an integer >= {low}")
        if self.workers > 1 and self.sampler == "nsga2":  # it keeps its generations in the study itself
            raise bad("sampler", f"nsga2 cannot share a study reproducibly between {self.workers} workers: use one "
                      "worker or another sampler")
        if self.timeout is not None and not self.timeout > 0:
            raise bad("timeout", "must be > 0 seconds")
        if self.trials is None and self.timeout is None:
            raise UserError("give trials or a timeout, or the search never ends", param="trials", value=None)
        if not (isinstance(self.reduction_factor, (int, float)) and self.reduction_factor > 1):
            raise bad("reduction_factor", "must be > 1")
        if not (isinstance(self.selection_fraction, (int, float)) and 0 <= self.selection_fraction < 1):
            raise bad("selection_fraction", "must be in [0, 1)")
        if not self.budget.strip().endswith("%"):
            parse_budget(self.budget)
        self.train_args({}).validate()
        self.train_args({}, n_full=max(1000, self.max_train_samples or 0), fraction=0.5).validate()
        return self


def default_workers() -> int:
    """Trial workers by default: 2 on a CPU with 2 or more cores (ASHA is asynchronous; two 1-thread processes
    trained 1.23x as fast as one 2-thread one, bench/results/workers.md), 1 on one core or a GPU."""
    import torch

    return 2 if available_cores() >= 2 and not torch.cuda.is_available() else 1


def available_cores() -> int:
    """The cores this process may run on (its affinity, where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threads_per_worker(workers: int) -> int:
    return max(1, available_cores() // max(1, workers))


def settings_fields() -> dict[str, Any]:
    """Each field's default and help, for the CLI (one home for the search's defaults)."""
    return {f.name: f for f in fields(SearchSettings)}


def rungs_needed(fidelity: Fidelity) -> int:
    """New configurations ASHA needs before anything can reach the top rung (eta per rung below it)."""
    return int(math.ceil(fidelity.eta ** (len(fidelity.fractions) - 1))) if fidelity.enabled else 1
