"""Does the tabular benchmark rank configurations as full runs do? (issue 12, point 1)

Takes configurations of the table (bench/results/table_<task>.jsonl) spread over its range of top-rung
scores, retrains each exactly as a search retrains its pick (``SearchSettings.train_args`` stage
``retrain``: all of the training set but the selection split, the trial's final structure fixed from the
start), one seed, and compares ranks: Spearman of the table's rung scores against the retrain's dev and
selection scores.

    python bench/table_rank_check.py --commit     # resumable; one retrain per configuration, committed as it goes
    python bench/table_rank_check.py --summarise  # only rewrite the summary
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import GLUE_DIR, RESULTS, machine_info, md_table  # noqa: E402
from table_build import _commit, read_table  # noqa: E402


def _path(task: str) -> Path:
    return RESULTS / f"table_rank_check_{task}.jsonl"


def table_scores(rows: list[dict]) -> dict[int, dict]:
    """Complete configurations: mean selection score per rung, plan, and the recorded final structure."""
    plans = {r["config"]: r["plan"] for r in rows if r.get("kind") == "config" and r["feasible"]}
    by: dict[int, dict[int, list[dict]]] = {}
    for r in rows:
        if r.get("kind") == "run":
            by.setdefault(r["config"], {}).setdefault(r["rung"], []).append(r)
    rungs = len(next(r for r in rows if r.get("kind") == "header")["fractions"])
    return {k: {"plan": plans[k], "rung_scores": [statistics.fmean(x["selection"] for x in v[g]) for g in range(rungs)],
                "final_structure": v[rungs - 1][0]["final_structure"], "params": v[rungs - 1][0]["params"]}
            for k, v in by.items() if len(v) == rungs}


def spread(scores: dict[int, dict], n: int) -> list[int]:
    """``n`` configurations evenly spaced in the order of their top-rung score, the extremes first (a run cut
    short still compares the most different ones)."""
    order = sorted(scores, key=lambda k: scores[k]["rung_scores"][-1])
    if len(order) > n:
        order = [order[round(i * (len(order) - 1) / (n - 1))] for i in range(n)]
    out = []
    while order:
        out.append(order.pop())
        if order:
            out.append(order.pop(0))
    return out


def summarise(task: str) -> dict:
    from scipy.stats import spearmanr

    runs = [json.loads(x) for x in _path(task).read_text().splitlines() if x.strip()]
    out = {"task": task, "configurations": len(runs), "runs": runs}
    if len(runs) >= 3:
        for g in range(len(runs[0]["rung_scores"])):
            xs = [r["rung_scores"][g] for r in runs]
            out[f"rung{g}_vs_dev"] = round(float(spearmanr(xs, [r["dev"] for r in runs]).statistic), 3)
            out[f"rung{g}_vs_selection"] = round(float(spearmanr(xs, [r["selection"] for r in runs]).statistic), 3)
    lines = [f"# Does the table rank like full retrains? ({task})", "",
             "Each configuration retrained as a search retrains its pick (all training rows but the selection split, "
             "final structure fixed), 1 seed. Spearman of the table's mean rung scores against the retrain's scores: "
             + ", ".join(f"{k} {v}" for k, v in out.items() if k.startswith("rung")), "",
             md_table(["config", "params", "table rung scores", "retrain selection", "retrain dev", "retrain s"],
                      [[r["config"], f"{r['params']:,}", ", ".join(f"{x:.4f}" for x in r["rung_scores"]),
                        f"{r['selection']:.4f}", f"{r['dev']:.4f}", f"{r['wall_s']:.0f}"] for r in runs])]
    (RESULTS / f"table_rank_check_{task}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--budget", default="0.1M")
    ap.add_argument("--n", type=int, default=6, help="configurations to retrain")
    ap.add_argument("--commit", action="store_true")
    ap.add_argument("--summarise", action="store_true")
    a = ap.parse_args()
    if a.summarise:
        summarise(a.task)
        return

    import optuna

    from autolor2c.search.retrain import fixed_structure_spec
    from autolor2c.search.space import TrialPlan
    from autolor2c.search.study import SearchSettings, build_context
    from autolor2c.train import train

    settings = SearchSettings(task=a.task, budget=a.budget, data_dir=GLUE_DIR, progress=False)
    ctx = build_context(settings)
    scores = table_scores(read_table(a.task))
    path = _path(a.task)
    done = {json.loads(x)["config"] for x in path.read_text().splitlines() if x.strip()} if path.is_file() else set()
    for k in spread(scores, a.n):
        if k in done:
            continue
        c = scores[k]
        # the retrain's own rule (fixed_structure_spec) applied to the table's recorded final structure
        record = optuna.trial.create_trial(value=0.0, user_attrs={"plan": c["plan"], "final_structure": c["final_structure"]})
        spec = fixed_structure_spec(record)
        args = settings.train_args(TrialPlan.from_dict(c["plan"]).train, stage="retrain", seed=0)
        r = train(ctx.task, spec, args, model_name=settings.model, data_dir=settings.data_dir)
        if r.trainable_params != c["params"]:
            sys.exit(f"config {k}: the retrain has {r.trainable_params} params, the table {c['params']}")
        row = {"config": k, "params": r.trainable_params, "rung_scores": c["rung_scores"], "selection": r.primary_score,
               "dev": r.dev_score, "wall_s": r.wall_time_s, "n_train": r.n_train, "machine": machine_info()}
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"config {k}: table {c['rung_scores']} -> retrain selection {r.primary_score:.4f} dev {r.dev_score:.4f} "
              f"({r.wall_time_s:.0f}s)", flush=True)
        summarise(a.task)
        if a.commit:
            _commit(path, f"bench: table rank check {a.task}, configuration {k} retrained")
            _commit(RESULTS / f"table_rank_check_{a.task}.md", f"bench: table rank check {a.task} summary")


if __name__ == "__main__":
    main()
