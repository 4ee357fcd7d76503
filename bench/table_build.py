"""Build the tabular benchmark of the default search space (issue 12): a fixed, seeded sample of
configurations of ``lor2c_full`` on the default model, each trained at every fidelity rung of the default
search with 2 training seeds, exactly as a search trial trains it (``SearchSettings.train_args`` stage
``trial``, the product's ``train``), scored on the selection split (what the search sees) and on dev.

    python bench/table_build.py                  # resumable; appends to bench/results/table_<task>.jsonl
    python bench/table_build.py --commit         # and commits the table after each configuration
    python bench/table_build.py --configs 64     # how far down the fixed sample to go

The sample is drawn once by Optuna's RandomSampler (seed ``--sample-seed``) through the space's own
``suggest``, so row k is the same configuration on every machine and in every session; over-budget
configurations are recorded with their exact parameter count and are not trained (a search does not train
them either). Each line of the JSONL is one run: (configuration, rung, seed) -> scores, steps, cost. The
replay (bench/table_replay.py) runs the product's own search against this table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import GLUE_DIR, RESULTS, machine_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1)


def table_path(task: str) -> Path:
    return RESULTS / f"table_{task}.jsonl"


def sample_configurations(ctx, n: int, sample_seed: int) -> list[dict[str, Any]]:
    """The first ``n`` configurations of the fixed random sample: params, plan, exact param counts."""
    import optuna

    from autolor2c.search.study import plan_to_spec
    from autolor2c.train import count_adapter_params

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=sample_seed))
    out = []
    for k in range(n):
        trial = study.ask()
        plan = ctx.space.suggest(trial, ctx.shape.num_layers)
        counts = count_adapter_params(plan_to_spec(plan), ctx.shape)
        study.tell(trial, 0.0)
        out.append({"config": k, "params": dict(trial.params), "plan": plan.to_dict(), "planned_params": counts,
                    "feasible": counts["peak"] <= ctx.budget})
    return out


def read_table(task: str) -> list[dict[str, Any]]:
    path = table_path(task)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _commit(path: Path, message: str) -> None:
    """Commit only the table (``git commit PATH`` leaves anything else staged alone); retried on a busy index."""
    for _ in range(5):
        add = subprocess.run(["git", "add", str(path)], cwd=ROOT, capture_output=True, text=True)
        done = add.returncode == 0 and subprocess.run(["git", "commit", "-q", "-m", message, "--", str(path)], cwd=ROOT,
                                                      capture_output=True, text=True).returncode == 0
        if done:
            return
        time.sleep(3)
    print(f"note: could not commit {path} (index busy); it stays on disk", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--budget", default="0.1M")
    ap.add_argument("--configs", type=int, default=64, help="how many of the fixed sample to measure")
    ap.add_argument("--sample-seed", type=int, default=12)
    ap.add_argument("--commit", action="store_true", help="git-commit the table after each configuration")
    a = ap.parse_args()

    from autolor2c.search.study import SearchSettings, build_context, plan_to_spec
    from autolor2c.search.space import TrialPlan
    from autolor2c.train import train

    settings = SearchSettings(task=a.task, budget=a.budget, data_dir=GLUE_DIR, progress=False)
    ctx = build_context(settings)
    path = table_path(a.task)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = read_table(a.task)
    header = next((r for r in rows if r.get("kind") == "header"), None)
    ident = {"task": a.task, "budget": a.budget, "budget_params": ctx.budget, "sample_seed": a.sample_seed,
             "space": ctx.space.name, "model": settings.model, "fractions": list(settings.fidelity.fractions),
             "n_train_full": ctx.n_train_full, "trivial": ctx.trivial, "trivial_dev": ctx.trivial_dev}
    if header is None:
        with path.open("a") as f:
            f.write(json.dumps({"kind": "header", **ident, "machine": machine_info()}) + "\n")
    elif any(header.get(k) != v for k, v in ident.items() if k not in ("trivial", "trivial_dev")):
        sys.exit(f"{path} was built with other settings ({ {k: header.get(k) for k in ident} }); move it away first")
    done = {(r["config"], r["rung"], r["seed"]) for r in rows if r.get("kind") == "run"}
    recorded = {r["config"] for r in rows if r.get("kind") == "config"}

    fractions = settings.fidelity.fractions
    for c in sample_configurations(ctx, a.configs, a.sample_seed):
        k = c["config"]
        if k not in recorded:
            with path.open("a") as f:
                f.write(json.dumps({"kind": "config", **c}) + "\n")
        if not c["feasible"]:
            continue
        plan = TrialPlan.from_dict(c["plan"])
        spec = plan_to_spec(plan)
        new = 0
        for seed in SEEDS:
            for rung, frac in enumerate(fractions):
                if (k, rung, seed) in done:
                    continue
                args = settings.train_args(plan.train, stage="trial", n_full=ctx.n_train_full, fraction=frac, seed=seed)
                args.score_dev = True  # read once at the end; the search itself never sees it
                r = train(ctx.task, spec, args, model_name=settings.model, data_dir=settings.data_dir)
                get = (lambda key: r[key]) if isinstance(r, dict) else (lambda key: getattr(r, key))
                row = {"kind": "run", "config": k, "rung": rung, "fraction": frac, "seed": seed,
                       "selection": get("primary_score"), "dev": get("dev_score"), "params": get("trainable_params"),
                       "steps": get("steps"), "n_train": get("n_train"), "wall_s": get("wall_time_s"),
                       "cpu_s": get("cpu_time_s"), "final_structure": get("final_structure")}
                with path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                new += 1
                print(f"config {k} rung {rung} seed {seed}: selection {row['selection']:.4f} dev {row['dev']:.4f} "
                      f"({row['params']:,} params, {row['steps']} steps, {row['wall_s']:.0f}s)", flush=True)
        if a.commit and (new or k not in recorded):
            _commit(path, f"bench: tabular benchmark {a.task}, configuration {k} measured")


if __name__ == "__main__":
    main()
