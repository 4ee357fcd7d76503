"""The command line: parse arguments, call the library, turn bad input into one line and exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from autolor2c.errors import UserError
from autolor2c.precision import PRECISIONS

EXIT_BAD_INPUT = 2

# The library's parameter names (UserError.param) as this command line spells them; the only place that
# knows both. A parameter missing here is shown under the library's name.
FLAG_OF_PARAM = {
    "adapter": "--adapter", "budget": "--budget", "config": "--config", "data_dir": "--data-dir",
    "eta": "--reduction-factor", "format": "--format", "model": "--model", "output": "--output", "pick": "--pick",
    "rungs": "--fidelity-rungs", "sampler": "--sampler", "storage": "--storage", "study_name": "--study-name",
    "trial": "--trial", "warm_start": "--warm-start", "selection_fraction": "--selection-fraction",
    "min_steps": "--min-steps", "max_length": "--max-length", "batch_size": "--batch-size", "epochs": "--epochs",
    "max_train_samples": "--max-train-samples", "max_eval_samples": "--max-eval-samples",
    "backbone_dropout": "--backbone-dropout", "reduction_factor": "--reduction-factor",
    "min_rung_steps": "--min-rung-steps", "trials": "--trials", "seeds": "--seeds", "timeout": "--timeout",
    "learning_rate": "--learning-rate", "seed": "--seed", "oneshot": "--oneshot", "precision": "--precision",
    "patience": "--patience", "eval_every": "--eval-every",
}


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # one line, exit 2 (argparse's own code), no usage dump; main adds the prefix
        raise UserError(message)


# --------------------------------------------------------------------------------------------------
# value checkers: each names the flag and the bad value
# --------------------------------------------------------------------------------------------------
def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = low - 1
        if v < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return v
    return parse


def _dropout_rate(text: str) -> float:
    v = _float_above(0.0, inclusive=True)(text)
    if v >= 1:
        raise argparse.ArgumentTypeError(f"expected a rate in [0, 1), got {text!r}")
    return v


def _float_above(low: float, inclusive: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = float("nan")
        if not (v >= low if inclusive else v > low) or v == float("inf"):
            kind = f">= {low:g}" if inclusive else f"> {low:g}"
            raise argparse.ArgumentTypeError(f"expected a number {kind}, got {text!r}")
        return v
    return parse


_positive = _float_above(0.0)


def _task_from_args(a: argparse.Namespace):
    from autolor2c.tasks import custom_task, get_task

    if a.task == "custom":
        if not (a.train_file and a.validation_file and a.text_columns):
            raise UserError("--task custom needs --train-file, --validation-file and --text-columns")
        cols = [c.strip() for c in a.text_columns.split(",") if c.strip()]
        return custom_task(a.train_file, a.validation_file, cols, label_column=a.label_column, regression=a.regression)
    if a.train_file or a.validation_file:
        raise UserError(f"--train-file/--validation-file are for --task custom, not --task {a.task}")
    return get_task(a.task)


# --------------------------------------------------------------------------------------------------
# train / predict
# --------------------------------------------------------------------------------------------------
def cmd_train(a: argparse.Namespace) -> int:
    from autolor2c.train import read_config_file, train, training_args

    task = _task_from_args(a)
    spec, overrides = read_config_file(a.config)
    flags = {f: getattr(a, f) for f in ("epochs", "learning_rate", "batch_size", "max_length", "max_train_samples",
                                        "max_eval_samples", "seed", "eval_every", "backbone_dropout", "min_steps",
                                        "precision", "patience")}
    # the library's defaults, then the config file's training keys, then the flags given
    args = training_args({**overrides, **{k: v for k, v in flags.items() if v is not None}})
    out = Path(a.out) if a.out else Path("runs") / f"{task.name}-{Path(a.config).stem}-s{args.seed}"
    result = train(task, spec, args, model_name=a.model, data_dir=a.data_dir, out_dir=out)
    _print_summary(result, out)
    return 0




def _print_summary(result, out: Path) -> None:
    hist = ", ".join(f"{e['op']}@{e['step']}" for e in result.history) or "none"
    print(f"{result.task} {result.method}: {result.primary_metric} = {result.primary_score:.4f} | "
          f"adapter params {result.trainable_params:,} (+ head {result.head_params:,}) | "
          f"{result.steps} steps in {result.wall_time_s:.1f}s | structural changes: {hist}")
    print(f"wrote {out / 'metrics.json'} and {out / 'adapter'}")


def _task_from_meta(meta: dict[str, Any]):
    """The task an adapter was trained for (a GLUE name, or a custom task's saved spec)."""
    from autolor2c.tasks import TaskSpec, get_task

    if meta.get("task_spec"):
        return TaskSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["task_spec"].items()})
    return get_task(meta["task"])


def cmd_predict(a: argparse.Namespace) -> int:
    import numpy as np

    from autolor2c.tasks import compute_metrics, encode_task, get_task, load_task_data, resolve_data_dir
    from autolor2c.train import Batches, load_adapter, load_backbone, load_tokenizer, predict_logits, read_meta
    from autolor2c.train.loop import pick_device

    from autolor2c.lor2c import CONFIG_NAME
    from autolor2c.train.adapters import META_NAME

    folder = Path(a.adapter)
    if (folder / CONFIG_NAME).is_file() and not (folder / META_NAME).is_file():
        # saved by a user's Trainer or model.save_pretrained: the task comes from --task
        if not a.task:
            raise UserError(f"bad --adapter {a.adapter!r}: it has {CONFIG_NAME} but no {META_NAME} (the task and "
                            f"labels predict needs): pass --task NAME, or add it once with "
                            f"autolor2c.integrations.hf.write_run_meta(folder, task=NAME)")
        from autolor2c.integrations.hf import run_meta

        meta = run_meta(folder, get_task(a.task))
    else:
        meta = read_meta(a.adapter)
    task = _task_from_meta(meta)
    if a.task and get_task(a.task).name != task.name:
        raise UserError(f"--task {a.task}: the adapter was trained for {task.name}")
    if a.input:  # the file is checked before the model loads
        from autolor2c.train.predict_file import default_output, predict_file, read_input

        rows = read_input(task, Path(a.input))
    tokenizer = load_tokenizer(meta.get("model"))
    base = load_backbone(meta.get("model"), meta["num_labels"], task.is_regression)
    model = load_adapter(base, a.adapter)
    device = pick_device("auto")
    model.to(device).eval()
    if a.input:
        out = Path(a.output) if a.output else default_output(Path(a.input))
        summary = predict_file(model, tokenizer, task, rows, out, device, max_length=meta.get("max_length", 128),
                               batch_size=a.batch_size, progress=not a.no_progress)
        print(json.dumps(summary))
        return 0
    if a.text:
        import torch

        enc = tokenizer([a.text], truncation=True,
                        max_length=meta.get("max_length", 128), return_tensors="pt", padding=True)
        with torch.no_grad():
            logits = model(**{k: v.to(device) for k, v in enc.items()}).logits.float().cpu().numpy()
        row = logits[0]
        if task.is_regression:
            print(json.dumps({"text": a.text, "score": float(row[0])}))
        else:
            probs = np.exp(row - row.max())
            probs /= probs.sum()
            label = int(row.argmax())
            name = task.label_names[label] if task.label_names and label < len(task.label_names) else label
            print(json.dumps({"text": a.text, "label": name, "label_id": label, "probability": round(float(probs[label]), 4)}))
        return 0
    splits = load_task_data(task, data_dir=resolve_data_dir(a.data_dir), max_eval_samples=a.max_eval_samples,
                            max_train_samples=1)
    enc = encode_task(task, splits, tokenizer, max_length=meta.get("max_length", 128))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    logits, labels = predict_logits(model, Batches(enc["validation"], pad, task.is_regression), device)
    scores = compute_metrics(task, logits, labels)
    print(json.dumps({"task": task.name, "n": len(labels), **scores,
                      "primary_score": scores[task.primary_metric], "trained_score": meta.get("primary_score")}))
    return 0


# --------------------------------------------------------------------------------------------------
# search / show / retrain / export / dashboard
# --------------------------------------------------------------------------------------------------
def _settings_from_args(a: argparse.Namespace):
    from autolor2c.search.fidelity import Fidelity
    from autolor2c.search.run import SearchSettings, settings_fields

    if a.trials is None and a.timeout is None:
        a.trials = SearchSettings.trials
    from autolor2c.search.run import storage_kind

    # worker processes share the study through its storage: not through memory, and Ray runs its own trials
    alone = a.backend == "ray" or storage_kind(a.storage or SearchSettings().storage_url()) == "memory"
    if a.workers is None:
        from autolor2c.search.run import default_workers

        a.workers = 1 if alone else default_workers()
    elif a.workers > 1 and alone:
        raise UserError(f"--workers {a.workers} needs --backend optuna and a storage the processes share "
                        "(not memory); Ray runs trials side by side with --max-concurrent")
    if a.no_multi_fidelity:
        fidelity = Fidelity.off()
    elif a.fidelity_rungs:
        fidelity = Fidelity.parse(a.fidelity_rungs, a.reduction_factor)
    else:
        fidelity = None  # rungs from --min-rung-steps, the full run and --reduction-factor
    if a.space is not None and not Path(a.space).is_file():
        from autolor2c.search.space import list_builtin_spaces

        if a.space not in list_builtin_spaces():
            raise UserError(f"bad --space {a.space!r}: no such file and not a shipped space "
                            f"({', '.join(list_builtin_spaces())})")
    # a flag's dest is its field's name; an off switch turns its field's True off
    values = {name: getattr(a, name) for name in settings_fields() if hasattr(a, name)}
    values.update({name: not getattr(a, _dest(flag)) for flag, name in _OFF_SWITCHES.items()})
    return SearchSettings(**values, fidelity=fidelity)


def _spawn_workers(a: argparse.Namespace) -> list:
    """Extra worker processes on the same study (``--workers N``), each with its share of the cores: each
    runs trials as ordered.py decides them until the study has its trials; only this process trains the
    baselines and retrains."""
    import subprocess

    if a.workers <= 1 or a.worker > 0:
        return []
    from autolor2c.search.run import threads_per_worker

    # a helper returns after its trials (pipeline.search), so the user's --seeds and baselines flags are harmless
    argv = [x for x in _ARGV if x not in ("--no-progress",)]
    for flag in ("--workers", "--worker"):
        while flag in argv:
            i = argv.index(flag)
            del argv[i:i + 2]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_worker(a.workers))}
    return [subprocess.Popen([sys.executable, "-m", "autolor2c.cli", *argv, "--workers", str(a.workers), "--worker",
                              str(k), "--no-progress"], stdout=subprocess.DEVNULL,
                             env=env, preexec_fn=_die_with_parent)
            for k in range(1, a.workers)]


def _die_with_parent() -> None:
    """In a worker, before it starts: end it when the main process dies (kill -9 included), so a killed search
    leaves no worker training on; a resume then re-queues its trial as any interrupted one."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: the worker outlives a killed main process
        pass


class _Helpers:
    """The helper workers of ``--workers N`` (pipeline.Helpers), started once the study is ready. Meanwhile
    this process trains on its share of the cores, and on all of them again once its own trials are done
    (the baselines and retrains split the cores their own way)."""

    def __init__(self, a: argparse.Namespace):
        self.a, self.children = a, []
        self.saved_threads: int | None = None
        self.ended: float | None = None   # when the last helper was first seen ended

    def start(self, study) -> None:
        if self.a.workers > 1 and "OMP_NUM_THREADS" not in os.environ:
            import torch

            from autolor2c.search.run import threads_per_worker

            self.saved_threads = torch.get_num_threads()
            os.environ["OMP_NUM_THREADS"] = str(threads_per_worker(self.a.workers))  # train() keeps it then
            torch.set_num_threads(threads_per_worker(self.a.workers))
        self.children.extend(_spawn_workers(self.a))

    def release(self) -> None:
        if self.saved_threads is not None:
            import torch

            del os.environ["OMP_NUM_THREADS"]
            torch.set_num_threads(self.saved_threads)
            self.saved_threads = None

    def busy_cores(self) -> int:
        from autolor2c.search.run import threads_per_worker

        running = sum(child.poll() is None for child in self.children)
        if not running and self.ended is None:
            self.ended = time.time()
        return running * threads_per_worker(self.a.workers)

    def wait(self) -> float:
        for child in self.children:
            child.wait()
        if self.ended is None:
            self.ended = time.time()
        return self.ended


_ARGV: list[str] = []


def cmd_search(a: argparse.Namespace) -> int:
    from autolor2c.search import NothingTrained, search

    settings = _settings_from_args(a)
    kwargs: dict[str, Any] = {}
    if a.backend == "ray":
        from autolor2c.search.backends import run_search_ray

        kwargs["run_trials"] = lambda st: run_search_ray(
            st, ray_address=a.ray_address, cpus_per_trial=a.cpus_per_trial, gpus_per_trial=a.gpus_per_trial,
            max_concurrent=a.max_concurrent, num_cpus=a.ray_num_cpus)
    else:
        if a.ray_address or a.max_concurrent != 2:
            raise UserError("--ray-address/--max-concurrent need --backend ray")
        helpers = _Helpers(a)
        kwargs["on_study_ready"], kwargs["helpers"] = helpers.start, helpers
    try:
        search(settings, **kwargs)
    except NothingTrained as e:
        print(f"autolor2c: the search trained nothing to pick from: {e}", file=sys.stderr)
        return 1
    return 0


def _load_study_for(a: argparse.Namespace):
    import optuna

    from autolor2c.search.run import resolve_storage

    storage = resolve_storage(a.storage, heartbeat=False)
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    name = a.study
    if name is None:
        if len(names) != 1:
            raise UserError(f"--study is needed: the storage holds {len(names)} studies"
                            + (f" ({', '.join(names[:8])})" if names else ""))
        name = names[0]
    if name not in names:
        raise UserError(f"bad --study {name!r}: no such study in the storage"
                        + (f" (have: {', '.join(names[:8])})" if names else ""))
    return optuna.load_study(study_name=name, storage=storage)


def cmd_show(a: argparse.Namespace) -> int:
    from autolor2c.search import record
    from autolor2c.search.results import print_front
    from autolor2c.search.front import cost_totals, study_hypervolume

    study = _load_study_for(a)
    metric = (study.metric_names or ["score"])[0]
    print_front(study, metric)
    budget = study.user_attrs.get(record.BUDGET_PARAMS)
    if budget:
        ref = study.user_attrs.get(record.HV_REFERENCE) or {
            "score": (study.user_attrs.get(record.TRIVIAL_SCORE) or {}).get("selection", 0.0),
            "name": "the input-blind score"}
        print(f"hypervolume {study_hypervolume(study, budget, ref['score']):.4f} (reference: {ref['name']}, "
              f"{metric} {ref['score']:.4f}, params = budget); cost {cost_totals(study)}")
    if record.PICK in study.user_attrs:
        r = study.user_attrs[record.PICK]
        std = f" ± {r['dev_std']:.4f}" if r.get("dev_std") is not None else ""
        print(f"pick: trial {r['trial']}, dev {metric} {r['dev_mean']:.4f}{std} over {r['seeds']} seed(s)")
    if record.VERDICT in study.user_attrs:
        print(f"verdict: {study.user_attrs[record.VERDICT]['sentence']}")
    return 0


def _context_for_study(study, a):
    from autolor2c.search import record
    from autolor2c.search.run import SearchSettings, build_context

    ident = study.user_attrs.get(record.IDENTITY)
    if not ident:
        raise UserError(f"study {study.study_name!r} was not made by autolor2c search")
    settings = SearchSettings.from_identity(
        ident, model=study.user_attrs.get(record.MODEL_ARG),
        data_dir=a.data_dir or study.user_attrs.get(record.DATA_DIR), space=study.user_attrs.get(record.SPACE_PATH),
        out=a.out or study.user_attrs.get(record.ARTIFACTS_DIR),
        seeds=getattr(a, "seeds", 3), progress=not getattr(a, "no_progress", False))
    return settings, build_context(settings, study.study_name)


def cmd_retrain(a: argparse.Namespace) -> int:
    from autolor2c.search import record
    from autolor2c.search.results import train_seeds
    from autolor2c.search.front import pick_trial

    study = _load_study_for(a)
    own = record.own_pick(study)
    if a.trial is None and a.pick is None and own is not None:
        picked = pick_trial(study, trial=int(own))
    else:
        picked = pick_trial(study, a.pick or "best", a.trial)
    settings, ctx = _context_for_study(study, a)
    if a.trial is None and a.pick == "smallest-tied":
        # as the search picks: with the noise it recorded from the cached baseline seeds (else the best's
        # seeds measure it), and a candidate whose tie fails gives way
        from autolor2c.search.results import pick_over_seeds
        chosen = pick_over_seeds(study, ctx, a.pick, a.seeds, settings.progress)
        picked, r = chosen.picked, chosen.pick
    else:
        r = train_seeds(study, ctx, picked, a.seeds, settings.progress)
    std = f" ± {r['dev_std']:.4f}" if r["dev_std"] is not None else ""
    print(f"trial {picked.number} over {r['seeds']} seed(s): dev {ctx.task.primary_metric} {r['dev_mean']:.4f}{std} "
          f"(the trial is seed 0; its seeds' adapters are in {ctx.out / 'retrain'})")
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    import yaml

    from autolor2c import export
    from autolor2c.search import record
    from autolor2c.search.front import pareto_front, pick_trial
    from autolor2c.search.results import best_config_dict
    from autolor2c.train import load_adapter, load_backbone, read_meta
    from autolor2c.train.backbone import portable_model_name

    study = _load_study_for(a)
    out = Path(a.out)
    src = Path(a.source) if a.source else Path(study.user_attrs.get(record.ARTIFACTS_DIR)
                                               or Path("studies") / study.study_name)
    # the study's own pick: the trial its adapter/ and best_config.yaml hold
    best_file = src / "best_config.yaml"
    own_pick = ((yaml.safe_load(best_file.read_text()) or {}).get("source") or {}).get("trial") if best_file.is_file() else None
    if own_pick is None:
        own_pick = record.own_pick(study)
    # one selection for every format: --trial, else --pick, else the study's pick
    if a.trial is not None or (a.pick is None and own_pick is None):
        t = pick_trial(study, a.pick or "best", a.trial)
    elif a.pick == "smallest":
        front = pareto_front(study)
        if not front:
            raise UserError(f"study {study.study_name!r} has no finished feasible trial yet")
        t = min(front, key=lambda x: (x.values[1], -x.values[0]))
    elif a.pick is not None:
        t = pick_trial(study, a.pick)
    else:
        t = pick_trial(study, trial=int(own_pick))
    label = f"trial {t.number}" + (f" ({a.pick})" if a.pick else "")
    if a.format in ("yaml", "json"):
        cfg = best_config_dict(t, study.study_name)
        # the training arguments the trial was trained with (the plan's own keys are among them)
        args = record.train_args(t)
        if args is None:
            try:
                args = (export.run_record(export.find_trial_adapter(src, t.number, None, own_pick)) or {}).get("train_args")
            except UserError:
                args = None
        if args:
            cfg["train"] = {**export.trained_settings(args), **cfg.get("train", {})}
        print(f"wrote {export.export_config(cfg, out, a.format)} ({label})")
        return 0
    structure = record.final_structure(t)
    if a.format == "lora" and structure and export.lora_part(structure) is None:
        with_lora = [x.number for x in pareto_front(study) if export.lora_part(record.final_structure(x))]
        spans = structure.get("spans") or []
        raise UserError(f"trial {t.number} has no LoRA part to export: its {len(spans)} bypass(es) {spans} cross layers, "
                        f"which a LoRA folder cannot express (no injected layers); "
                        + (f"front points with a LoRA part: trial(s) {', '.join(map(str, with_lora))} (--trial N)"
                           if with_lora else "no front point has one")
                        + "; --format lor2c exports any trial")
    adapter = export.find_trial_adapter(src, t.number, t.user_attrs.get(record.ADAPTER_DIR), own_pick)
    if a.format in ("lor2c", "peft"):
        if a.format == "peft":
            print("autolor2c: --format peft is deprecated, use --format lor2c: it writes LoR2C's own folder "
                  "(lor2c_config.json + lor2c_model.safetensors + autolor2c.json + README.md), not a PEFT adapter",
                  file=sys.stderr)
        retrain_file = src / "retrain.json"
        retrain = json.loads(retrain_file.read_text()) if retrain_file.is_file() else None
        folder = export.export_folder(adapter, out, export.trial_runs(retrain, t.number),
                                      title=f"LoR2C adapter from study {study.study_name}, trial {t.number}")
        print(f"wrote {folder} ({label}, {int(t.values[1]):,} params, from {adapter}): lor2c_config.json, "
              f"lor2c_model.safetensors, autolor2c.json, README.md (model card)")
        return 0
    meta = read_meta(adapter)
    regression = _task_from_meta(meta).is_regression
    wrapped = load_adapter(load_backbone(meta.get("model"), meta["num_labels"], regression), adapter)
    fresh = load_backbone(meta.get("model"), meta["num_labels"], regression)
    folder, caveat = export.export_lora(wrapped, fresh, out, portable_model_name(meta.get("model")))
    print(f"wrote {folder} ({label}): stock PEFT LoRA; it {caveat}")
    return 0


def cmd_dashboard(a: argparse.Namespace) -> int:
    from autolor2c.search.run import DEFAULT_STORAGE, resolve_storage

    url = a.storage or os.environ.get("AUTOLOR2C_STORAGE") or DEFAULT_STORAGE
    if url.startswith("sqlite:///"):
        path = Path(url.split(":///", 1)[1])
        if not path.is_file():
            raise UserError(f"bad --storage {url!r}: {path} does not exist (run a search first)")
    storage = resolve_storage(url, heartbeat=False)
    from optuna.artifacts import FileSystemArtifactStore
    from optuna_dashboard import run_server

    from autolor2c.search.results import artifact_dir

    folder = Path(a.artifact_dir) if a.artifact_dir else artifact_dir(url)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"optuna-dashboard for {url} (artifacts {folder}) at http://{a.host}:{a.port}/ (Ctrl-C stops it)", flush=True)
    run_server(storage, host=a.host, port=a.port, artifact_store=FileSystemArtifactStore(str(folder)))
    return 0


# --------------------------------------------------------------------------------------------------
# The parser. Building it and checking values import nothing heavy (torch, transformers, optuna,
# datasets, ray): `--help` and a bad value answer in a fraction of a second; commands import inside.
# --------------------------------------------------------------------------------------------------
BUILTIN_CONFIGS = ("lor2c", "sharelor2c", "mergelor2c", "injectlor2c", "imlor2c", "lora")


def _check_common_values(a: argparse.Namespace) -> None:
    """Values argparse's types cannot judge alone, checked with light library code before any command
    imports torch or Optuna (the library checks them again where it uses them)."""
    if getattr(a, "task", None) not in (None, "custom"):
        from autolor2c.tasks.registry import get_task

        get_task(a.task)
    from autolor2c.locations import data_folder, local_model_folder

    if getattr(a, "data_dir", None):
        data_folder(a.data_dir)
    if getattr(a, "model", None):
        local_model_folder(a.model)
    if getattr(a, "storage", None):
        from autolor2c.search.run import storage_kind

        storage_kind(a.storage)


def _check_predict_values(a: argparse.Namespace) -> None:
    _check_common_values(a)
    if a.input and a.text:
        raise UserError("--input and --text exclude each other")
    if a.output and not a.input:
        raise UserError("--output needs --input")
    if a.output:
        from autolor2c.tasks.registry import CUSTOM_FORMATS

        if Path(a.output).suffix.lower() not in CUSTOM_FORMATS:
            raise UserError(f"bad --output {a.output!r}: use one of {', '.join(CUSTOM_FORMATS)}")
    if a.input and not Path(a.input).is_file():
        raise UserError(f"bad --input {a.input!r}: no such file")
    if not Path(a.adapter).is_dir():
        raise UserError(f"bad --adapter {a.adapter!r}: no such folder")


def _check_search_values(a: argparse.Namespace) -> None:
    from autolor2c.search.space import parse_budget
    from autolor2c.search.fidelity import Fidelity

    _check_common_values(a)
    # a percentage is checked against a placeholder size here; the library applies the backbone's
    parse_budget(a.budget, backbone_params=10**12 if a.budget.strip().endswith("%") else None)
    if a.no_multi_fidelity and a.fidelity_rungs:
        raise UserError("--no-multi-fidelity conflicts with --fidelity-rungs")
    if a.fidelity_rungs:
        Fidelity.parse(a.fidelity_rungs, a.reduction_factor)
    looks_like_path = "/" in a.space or a.space.endswith((".yaml", ".yml", ".json")) if a.space else False
    if looks_like_path and not Path(a.space).is_file():
        raise UserError(f"bad --space {a.space!r}: no such file")
    # the library's own checks (training arguments included) last: they import torch
    _settings_from_args(a).validate()


class _HelpFormatter(argparse.HelpFormatter):
    """Adds "(default: X)" to a flag's help unless the help already speaks of its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or action.required or action.default in (None, argparse.SUPPRESS)
                or isinstance(action.default, bool)):
            return text
        return f"{text} (default: %(default)s)"


# Search flags take their default and help from their one home, SearchSettings' fields (run/settings.py
# imports no heavy module, so --help stays fast).
def _setting(name: str):
    from autolor2c.search.run import settings_fields

    return settings_fields()[name]


def _setting_help(name: str) -> str:
    return _setting(name).metadata["help"].replace("%", "%%")  # argparse formats help with %


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def _setting_flag(g, flag: str, name: str | None = None, **kwargs) -> argparse.Action:
    """A flag for SearchSettings' field ``name`` (default: the flag's dest): its default and help."""
    name = name or kwargs.get("dest") or _dest(flag)
    return g.add_argument(flag, **{"default": _setting(name).default, "help": _setting_help(name), **kwargs})


# search flags that turn off a SearchSettings field whose default is True
_OFF_SWITCHES = {"--no-builtins-first": "builtins_first", "--no-baselines": "baselines", "--no-progress": "progress"}


def _off_switch(g, flag: str) -> argparse.Action:
    return g.add_argument(flag, action="store_true", help=f"do not {_setting_help(_OFF_SWITCHES[flag])}")


def _add_data_flags(p: argparse.ArgumentParser, search: bool = False) -> None:
    g = p.add_argument_group("task and data")
    if search:  # a search takes a GLUE task: its identity, resume and baseline cache know no data files yet
        _setting_flag(g, "--task")
        _setting_flag(g, "--data-dir")
        _setting_flag(g, "--model")
        return
    g.add_argument("--task", required=True, help=f"{_setting_help('task')}, or 'custom' (with --train-file, "
                   "--validation-file and --text-columns)")
    _setting_flag(g, "--data-dir")
    g.add_argument("--train-file", default=None, help="custom task: training file (csv/tsv/json/jsonl/parquet); "
                   "default none")
    g.add_argument("--validation-file", default=None, help="custom task: validation file; default none")
    g.add_argument("--text-columns", default=None, help="custom task: comma-separated text column(s); default none")
    g.add_argument("--label-column", default="label", help="custom task: label column")
    g.add_argument("--regression", action="store_true", help="custom task: the label is a number")
    _setting_flag(g, "--model")


# One function per group of `search` flags: a new flag goes into the group it belongs to.
def _add_space_and_budget_flags(s: argparse.ArgumentParser) -> None:
    from autolor2c.search.run import SAMPLERS

    g = s.add_argument_group("search space and budget")
    _setting_flag(g, "--budget")
    _setting_flag(g, "--space")
    trials = _setting("trials")  # None here: the field's default, or no limit with --timeout (_settings_from_args)
    _setting_flag(g, "--trials", type=_int_at_least(1), default=None,
                  help=f"{_setting_help('trials')}; default {trials.default}, or no limit with --timeout")
    _setting_flag(g, "--timeout", type=_positive)
    _setting_flag(g, "--sampler", choices=SAMPLERS)
    _setting_flag(g, "--seed", type=_int_at_least(0))
    _setting_flag(g, "--warm-start")
    _off_switch(g, "--no-builtins-first")


def _add_fidelity_flags(s: argparse.ArgumentParser) -> None:
    g = s.add_argument_group("trial size and fidelity")
    _setting_flag(g, "--epochs", type=_positive)
    _setting_flag(g, "--min-steps", type=_int_at_least(0))
    _setting_flag(g, "--batch-size", type=_int_at_least(1))
    _setting_flag(g, "--selection-fraction", type=_float_above(0.0, inclusive=True))
    _setting_flag(g, "--max-train-samples", type=_int_at_least(1))
    _setting_flag(g, "--max-eval-samples", type=_int_at_least(1))
    _setting_flag(g, "--max-length", type=_int_at_least(8))
    _setting_flag(g, "--fidelity-rungs", "fidelity")  # parsed into a Fidelity by _settings_from_args
    _setting_flag(g, "--min-rung-steps", type=_int_at_least(1))
    _setting_flag(g, "--reduction-factor", type=_float_above(1.0))
    g.add_argument("--no-multi-fidelity", action="store_true", help="train every trial at full fidelity")
    _setting_flag(g, "--oneshot", action="store_true")
    _setting_flag(g, "--backbone-dropout", type=_dropout_rate)
    _setting_flag(g, "--precision", choices=PRECISIONS)


def _add_storage_and_backend_flags(s: argparse.ArgumentParser) -> None:
    g = s.add_argument_group("storage and backend")
    _setting_flag(g, "--storage")
    _setting_flag(g, "--study-name")
    _setting_flag(g, "--workers", type=_int_at_least(1), default=None)
    _setting_flag(g, "--worker", type=_int_at_least(0), help=argparse.SUPPRESS)
    g.add_argument("--backend", choices=("optuna", "ray"), default="optuna",
                   help="optuna (in this process) or ray (Ray Tune Tuner + OptunaSearch on the same storage)")
    g.add_argument("--ray-address", default=None, help="join an existing Ray cluster (default: a local instance)")
    g.add_argument("--ray-num-cpus", type=_int_at_least(1), default=None,
                   help="CPUs of the local Ray instance (default: all)")
    g.add_argument("--cpus-per-trial", type=_positive, default=1.0, help="Ray resources of one trial")
    g.add_argument("--gpus-per-trial", type=_float_above(0.0, inclusive=True), default=0.0,
                   help="Ray resources of one trial")
    g.add_argument("--max-concurrent", type=_int_at_least(1), default=2, help="Ray trials at once")


def _add_retrain_flags(s: argparse.ArgumentParser) -> None:
    from autolor2c.search.front import PICKS

    g = s.add_argument_group("pick, seeds and baselines")
    _setting_flag(g, "--pick", choices=PICKS)
    _setting_flag(g, "--seeds", type=_int_at_least(0))
    _off_switch(g, "--no-baselines")
    _setting_flag(g, "--baseline-seeds", type=_int_at_least(1))


def _add_output_flags(s: argparse.ArgumentParser) -> None:
    g = s.add_argument_group("output")
    _setting_flag(g, "--out")
    _off_switch(g, "--no-progress")


_STUDY_HELP = "study name (default: the storage's only study)"


def _add_search_commands(sub) -> None:
    from autolor2c.search.front import PICKS

    storage_help = _setting_help("storage")
    s = sub.add_parser("search", help="multi-objective search (score up, params down) under a parameter budget",
                       description="Create or continue a two-objective Optuna study whose top rung is the run "
                                   "`autolor2c train` makes (the built-ins first), train the baselines' seeds "
                                   "(cached; their spread is the seed noise), pick from its front, train the "
                                   "pick's other seeds, write reports and the pick's adapter.")
    _add_data_flags(s, search=True)
    _add_space_and_budget_flags(s)
    _add_fidelity_flags(s)
    _add_storage_and_backend_flags(s)
    _add_retrain_flags(s)
    _add_output_flags(s)
    s.set_defaults(func=cmd_search, check=_check_search_values)

    sh = sub.add_parser("show", help="print a study's Pareto front")
    sh.add_argument("--study", default=None, help=_STUDY_HELP)
    sh.add_argument("--storage", default=None, help=storage_help)
    sh.set_defaults(func=cmd_show, check=_check_common_values)

    r = sub.add_parser("retrain", help="retrain a study's picked (or given) trial with several seeds")
    r.add_argument("--study", default=None, help=_STUDY_HELP)
    r.add_argument("--storage", default=None, help=storage_help)
    r.add_argument("--trial", type=_int_at_least(0), default=None, help="trial number (default: the --pick)")
    r.add_argument("--pick", choices=PICKS, default=None,
                   help="a front point: best score, the knee, or smallest-tied (default: the search's own pick, "
                        "the trial `autolor2c show` prints; best if the search has not picked)")
    r.add_argument("--seeds", type=_int_at_least(1), default=3, help="retrain seeds")
    r.add_argument("--data-dir", default=None, help="GLUE folder (default: the study's)")
    r.add_argument("--out", default=None, help="artifacts folder (default: the study's)")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.set_defaults(func=cmd_retrain, check=_check_common_values)

    e = sub.add_parser("export", help="export the picked configuration: a LoR2C folder, yaml, json, or stock PEFT lora")
    e.add_argument("--study", default=None, help=_STUDY_HELP)
    e.add_argument("--storage", default=None, help=storage_help)
    e.add_argument("--format", choices=EXPORT_FORMATS, required=True,
                   help="lor2c: the adapter folder with a model card; yaml/json: the config `autolor2c train` "
                        "reads; lora: stock PEFT LoRA of the injected layers only; peft: old name of lor2c")
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--trial", type=_int_at_least(0), default=None,
                   help="trial number, any format (default: the --pick)")
    e.add_argument("--pick", choices=tuple(dict.fromkeys((*PICKS, "smallest"))), default=None,
                   help="a front point, any format: best score, the knee, or the smallest (default: the study's own "
                        "pick, the trial of its adapter/ and best_config.yaml)")
    e.add_argument("--source", default=None,
                   help="artifacts folder holding trials/, retrain/ and adapter/ (default: the study's)")
    e.set_defaults(func=cmd_export, check=_check_common_values)

    d = sub.add_parser("dashboard", help="start optuna-dashboard for the study storage (127.0.0.1)")
    d.add_argument("--storage", default=None, help=storage_help)
    d.add_argument("--host", default="127.0.0.1", help="address to bind")
    d.add_argument("--port", type=_int_at_least(1), default=8080, help="port to bind")
    d.add_argument("--artifact-dir", default=None,
                   help="the studies' artifact store (default: artifacts/ beside a SQLite or journal file, "
                        "else studies/artifacts)")
    d.set_defaults(func=cmd_dashboard, check=_check_common_values)


EXPORT_FORMATS = ("lor2c", "yaml", "json", "lora", "peft")


def build_parser() -> argparse.ArgumentParser:
    from autolor2c import __version__

    parser = _Parser(prog="autolor2c", description="AutoPEFT for LoR2C: search low-rank residual bypasses under a budget")
    parser.add_argument("--version", action="version", version=f"autolor2c {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train one configuration and write metrics.json + the adapter")
    _add_data_flags(t)
    g = t.add_argument_group("training (default: the library's, sized for a 2-core CPU)")
    g.add_argument("--config", required=True,
                   help=f"YAML/JSON file, or a built-in: {', '.join(BUILTIN_CONFIGS)}")
    g.add_argument("--epochs", type=_positive, help="default 1, or the config's")
    g.add_argument("--learning-rate", "--lr", dest="learning_rate", type=_positive, help="default 2e-3, or the config's")
    g.add_argument("--batch-size", type=_int_at_least(1), help="default 32, or the config's")
    g.add_argument("--max-length", type=_int_at_least(8), help="tokens per example; default 128, or the config's")
    g.add_argument("--max-train-samples", type=_int_at_least(1), help="default: all")
    g.add_argument("--max-eval-samples", type=_int_at_least(1), help="default: all")
    g.add_argument("--eval-every", type=_int_at_least(1), help="steps between evaluations (default: at the end)")
    g.add_argument("--patience", type=_int_at_least(1),
                   help="stop once this many evaluations in a row have not beaten the best (with --eval-every; "
                        "default: run the whole length)")
    g.add_argument("--min-steps", type=_int_at_least(0),
                   help="optimiser steps at least, repeating a small training set (default 2400)")
    g.add_argument("--seed", type=_int_at_least(0), help="default 0, or the config's")
    g.add_argument("--backbone-dropout", type=_dropout_rate,
                   help="dropout inside the frozen model (default 0: off; the adapter keeps its own)")
    g.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="fp32, or bf16 autocast (only on a CPU with native bf16: avx512_bf16 or amx_bf16) "
                        "(default fp32, or the config's)")
    g.add_argument("--out", default=None, help="output folder (default runs/<task>-<config>-s<seed>)")
    t.set_defaults(func=cmd_train, check=_check_common_values)

    p = sub.add_parser("predict", help="predict with a saved adapter: a file of texts, the dev set, or one --text")
    p.add_argument("--adapter", required=True, help="adapter folder (from train, search or export)")
    p.add_argument("--input", default=None,
                   help="csv/tsv/json/jsonl/parquet with the task's text columns: writes a prediction per row "
                        "(default: score the GLUE dev set)")
    p.add_argument("--output", default=None, help="predictions file (default <input>.predictions.jsonl)")
    p.add_argument("--batch-size", type=_int_at_least(1), default=64, help="rows per forward pass")
    p.add_argument("--task", default=None,
                   help="check the adapter was trained for this task; names the task of a folder saved by your own "
                        "Trainer (no autolor2c.json) (default: no check)")
    p.add_argument("--data-dir", default=None, help="GLUE folder for the dev set (default $AUTOLOR2C_DATA_DIR)")
    p.add_argument("--text", default=None, help="one text to label (default none)")
    p.add_argument("--max-eval-samples", type=_int_at_least(1), help="dev examples to score (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_predict, check=_check_predict_values)

    _add_search_commands(sub)
    return parser

def _bad_input(message: str) -> int:
    print(f"autolor2c: error: {' '.join(message.split())}", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _ARGV[:] = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        if hasattr(args, "check"):
            args.check(args)
        return int(args.func(args) or 0)
    except UserError as e:  # the library's bad input (ConfigError, AdapterLoadError, ... derive from it)
        return _bad_input(e.message(FLAG_OF_PARAM.get(e.param)))
    except FileNotFoundError as e:  # a file named on the command line
        return _bad_input(str(e) or type(e).__name__)
    except KeyboardInterrupt:
        print("autolor2c: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
