"""Runs kept across searches, per task, model, data, trainer version, configuration and training arguments
(one JSON file per such set-up under ``<studies>/baselines/``): the baselines' seeds, and the top-rung run of
each built-in trial with its model, so the next search on that set-up trains none of them again. An entry
whose recorded identity disagrees with the set-up is stale and not used."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from autolor2c.tasks import resolve_data_dir
from autolor2c.train import TRAINER_VERSION, AdapterSpec, TrainResult, model_label

Entry = tuple[Path, dict[str, Any]]   # the cache file and the identity it must hold


def kept_runs_dir(ctx) -> Path | None:
    """Beside the study's artifacts folder, shared by the studies under it."""
    return ctx.out.parent / "baselines" if ctx.out is not None else None


def run_ident(ctx, spec: AdapterSpec, plan_train: dict[str, Any]) -> dict[str, Any]:
    """What a kept run depends on: task, model, data, trainer version, configuration and training arguments
    (any seed: the seed is each run's own)."""
    s = ctx.settings
    args = s.train_args(plan_train, seed=0)
    data_dir = resolve_data_dir(s.data_dir)
    ident = {"task": ctx.task.name, "model": model_label(s.model), "data": str(data_dir.resolve()) if data_dir else "hub",
             "trainer": TRAINER_VERSION, "config": spec.to_dict(),
             "args": {k: v for k, v in vars(args).items() if k not in ("progress", "seed", "device")}}
    return json.loads(json.dumps(ident, sort_keys=True, default=str))  # as the cache file holds it


def cache_entry(ctx, folder: Path, name: str, spec: AdapterSpec, plan_train: dict[str, Any]) -> Entry:
    """The cache file of ``name``'s runs in ``folder`` and the identity it must hold."""
    ident = run_ident(ctx, spec, plan_train)
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return folder / f"{ctx.task.name}-{model_label(ctx.settings.model)}-{name}-{digest}.json", ident


def read_runs(entry: Entry, say: bool = True) -> list[dict[str, Any]]:
    """The kept runs, each with its seed; none where the file is missing or holds another identity (the key
    is a digest of it: a file that disagrees is stale or foreign, and trains again)."""
    f, ident = entry
    if not f.is_file():
        return []
    data = json.loads(f.read_text())
    if "ident" in data and data["ident"] != ident:
        if say:
            print(f"  {f.name}: cached for other training arguments: not used")
        return []
    return [r for r in data.get("runs", []) if "seed" in r]


def write_runs(entry: Entry, name: str, runs: list[dict[str, Any]]) -> None:
    """Add ``runs`` to the cache file by seed (they replace a refused run of the same seed; the other seeds
    another search wrote there meanwhile are kept)."""
    f, ident = entry
    by_seed = {r["seed"]: r for r in read_runs(entry, say=False)}
    new = {r["seed"]: {k: v for k, v in r.items() if k != "trial"} for r in runs}
    if all(by_seed.get(k) == v for k, v in new.items()):
        return
    by_seed = {**by_seed, **new}
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp")
    tmp.write_text(json.dumps({"config": name, "ident": ident, "runs": [by_seed[k] for k in sorted(by_seed)]},
                              indent=2, default=str))
    tmp.replace(f)


def seed_record(r: TrainResult) -> dict[str, Any]:
    """A run as the cache and the study's seed records hold it."""
    return {"selection": r.primary_score, "dev": r.dev_score, "dev_scores": r.dev_scores,
            "params": r.trainable_params, "wall_s": r.wall_time_s, "cpu_s": r.cpu_time_s,
            "n_train": r.n_train, "final_structure": r.final_structure, "threads": r.threads}


# --------------------------------------------------------------------------------------------------
# A built-in trial's top-rung run, with its model: what ``train(out_dir=...)`` wrote (metrics.json, adapter/)
# --------------------------------------------------------------------------------------------------
def _run_folder(entry: Entry, seed: int) -> Path:
    return entry[0].with_name(f"{entry[0].stem}-seed{seed}")


def kept_top_run(entry: Entry, seed: int, into: Path) -> TrainResult | None:
    """The kept run of ``seed``, copied into ``into`` as ``train(out_dir=into)`` would have written it, or None
    where none is kept for this identity."""
    src = _run_folder(entry, seed)
    # its record is written after its folder, and a file of another identity reads as no runs
    if seed not in {r["seed"] for r in read_runs(entry, say=False)} or not (src / "metrics.json").is_file():
        return None
    try:
        result = TrainResult(**json.loads((src / "metrics.json").read_text()))
    except (ValueError, TypeError):   # unreadable, or written by a TrainResult of other fields: train again
        return None
    replace_dir(src, into)
    return result


def keep_top_run(entry: Entry, name: str, seed: int, folder: Path, run: dict[str, Any]) -> None:
    """Keep the run ``train(out_dir=folder)`` wrote (``run``: its record for the cache file), if it wrote one."""
    if not ((folder / "metrics.json").is_file() and (folder / "adapter").is_dir()):
        return   # a trainer that saves nothing (the tests' synthetic one) keeps nothing
    replace_dir(folder, _run_folder(entry, seed))
    write_runs(entry, name, [{**run, "seed": seed}])


def replace_dir(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
