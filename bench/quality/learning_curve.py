"""Can the selection split stop a run early? One long run of the built-in ``lor2c`` per task and seed, scored on
the selection split and on dev every ``EVERY`` steps (``TrainArgs.dev_curve``: dev chooses nothing).

Each run is the search's top rung at ``CAP`` steps (the default length, 2,400), with only the
evaluations made dense. Early stopping on the selection split with a patience of P evaluations, at this cap,
follows exactly this run's curve up to the step it stops (the learning-rate schedule is the cap's either way),
so every patience is read off the curve without another run:

- ``stop``: the first evaluation with P evaluations since the selection split's best; the cap if none;
- ``dev``: the dev score of the checkpoint the selection split chose up to ``stop`` (what the run would keep);
- against the whole run's choice (its selection-best checkpoint) and the best dev on the curve (an oracle).

The within-run rank correlation of selection and dev over the checkpoints says whether the selection split sees
what dev sees at all. Raw curves in ``results/learning_curve_runs.jsonl``; resumable.

    python -m bench.quality.learning_curve --tasks stsb,mrpc --seeds 0,1,2
    python -m bench.quality.learning_curve --render
"""

from __future__ import annotations

import argparse
import json
import statistics

from bench.common import GLUE_DIR, RESULTS, machine_info, md_table, run_jobs, write_results

RAW = RESULTS / "learning_curve_runs.jsonl"
CAP = 2400
EVERY = 100
PATIENCES = (2, 3, 5, 8)

RUN = r"""
import json, os, sys
from autolor2c.search import SearchSettings
from autolor2c.train import read_config_file, train
task, config, cap, every, seed, data_dir, out = sys.argv[1:8]
s = SearchSettings(task=task, data_dir=data_dir, progress=False, min_steps=int(cap))
spec, plan_train = read_config_file(config)
args = s.train_args(plan_train, seed=int(seed))
args.eval_every, args.dev_curve = int(every), True
r = train(task, spec, args.validate(), data_dir=data_dir)
m = r.primary_metric
rec = {"task": task, "config": config, "cap": int(cap), "every": int(every), "seed": int(seed), "metric": m,
       "steps": r.steps, "n_selection": r.n_eval, "n_dev": r.n_dev, "best_step": r.best_step,
       "selection": r.primary_score, "dev": r.dev_score,
       "curve": [{"step": e["step"], "selection": e[m], "dev": e["dev_" + m], "train_loss": e["train_loss"]}
                 for e in r.evals],
       "structure_steps": sorted({h["step"] for h in r.history}),
       "wall_s": r.wall_time_s, "cpu_s": r.cpu_time_s, "loadavg": list(os.getloadavg())}
with open(out, "a") as f:
    f.write(json.dumps(rec) + "\n")
print("RESULT " + json.dumps(rec))
"""


def kept() -> list[dict]:
    if not RAW.is_file():
        return []
    return [json.loads(line) for line in RAW.read_text().splitlines() if line.strip()]


def early_stop(curve: list[dict], patience: int | None, after: int = 0) -> tuple[int, dict]:
    """(the step the run stops at, the checkpoint it keeps) under early stopping on the selection split with
    ``patience`` evaluations (None: never stops); checkpoints before ``after`` (the last structure change,
    whose old structure cannot be restored) are not kept, as in the loop."""
    best, since = None, 0
    for e in curve:
        if e["step"] < after:
            continue
        if best is None or e["selection"] > best["selection"]:
            best, since = e, 0
        else:
            since += 1
        if patience is not None and since >= patience:
            return e["step"], best
    return curve[-1]["step"], best


def spearman(x: list[float], y: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def summarise() -> dict:
    out: dict = {"protocol": f"built-in lor2c, the search's top rung (selection split 0.1) at {CAP} steps, "
                             f"selection and dev scored every {EVERY} steps; early stopping read off each curve",
                 "cap": CAP, "every": EVERY, "tasks": {}}
    runs = kept()
    for task in sorted({r["task"] for r in runs}):
        rs = sorted((r for r in runs if r["task"] == task), key=lambda r: r["seed"])
        per_seed = []
        for r in rs:
            after = max(r["structure_steps"], default=0)
            curve = r["curve"]
            tail = [e for e in curve if e["step"] >= after]
            row = {"seed": r["seed"], "cpu_s": r["cpu_s"],
                   "within_run_spearman": round(spearman([e["selection"] for e in tail], [e["dev"] for e in tail]), 3),
                   "best_dev": max(e["dev"] for e in tail), "best_dev_step": max(tail, key=lambda e: e["dev"])["step"],
                   "best_selection_step": max(tail, key=lambda e: e["selection"])["step"], "patience": {}}
            for p in (*PATIENCES, None):
                stop, keep = early_stop(curve, p, after)
                row["patience"]["none" if p is None else str(p)] = {"stop": stop, "kept_step": keep["step"],
                                                                    "dev": keep["dev"]}
            # the loop's default: the checkpoint chosen on the selection split among 3 evenly spaced evaluations
            coarse = [e for e in curve if e["step"] in {CAP // 3, 2 * CAP // 3, CAP}]
            _, keep = early_stop(coarse, None, after)
            row["three_evals"] = {"kept_step": keep["step"], "dev": keep["dev"]}
            row["last"] = {"kept_step": curve[-1]["step"], "dev": curve[-1]["dev"]}
            per_seed.append(row)
        agg = {}
        for p in [str(p) for p in PATIENCES] + ["none"]:
            agg[p] = {"dev_mean": round(statistics.fmean(s["patience"][p]["dev"] for s in per_seed), 4),
                      "stop_mean": round(statistics.fmean(s["patience"][p]["stop"] for s in per_seed)),
                      "seeds": len(per_seed)}
        for name in ("three_evals", "last"):
            agg[name] = {"dev_mean": round(statistics.fmean(s[name]["dev"] for s in per_seed), 4),
                         "stop_mean": CAP, "seeds": len(per_seed)}
        out["tasks"][task] = {"metric": rs[0]["metric"], "n_selection": rs[0]["n_selection"], "n_dev": rs[0]["n_dev"],
                              "seeds": per_seed, "early_stopping": agg,
                              "oracle_dev_mean": round(statistics.fmean(s["best_dev"] for s in per_seed), 4),
                              "within_run_spearman_mean": round(statistics.fmean(s["within_run_spearman"]
                                                                                for s in per_seed), 3)}
    return out


def render(d: dict) -> str:
    rows, seeds = [], []
    for task, t in d["tasks"].items():
        names = {"none": "the whole run, checkpoint chosen on selection (every 100 steps)",
                 "three_evals": "the whole run, checkpoint chosen on selection among 3 (the loop's default)",
                 "last": "the whole run, last checkpoint (nothing chosen)"}
        for p, a in t["early_stopping"].items():
            rows.append([task, names.get(p, f"early stopping, patience {p}"), a["seeds"], a["stop_mean"],
                         f"{a['dev_mean']:.4f}"])
        rows.append([task, "oracle: best dev on the curve", len(t["seeds"]), "-", f"{t['oracle_dev_mean']:.4f}"])
        for s in t["seeds"]:
            seeds.append([task, s["seed"], s["within_run_spearman"], s["best_selection_step"], s["best_dev_step"],
                          f"{s['best_dev']:.4f}", f"{s['cpu_s']:.0f}"])
    m = d.get("machine", {})
    return ("# Learning curves: can the selection split stop a run early?\n\n"
            f"Machine: {m.get('cpu')}. Script: `bench/quality/learning_curve.py`; raw curves in "
            "`learning_curve_runs.jsonl`. Protocol: " + d["protocol"] + ".\n\n"
            "Each rule read off the curves (dev of the checkpoint it keeps):\n\n"
            + md_table(["task", "rule", "seeds", "mean stop step", "dev mean"], rows)
            + "\nPer run: does the selection split rank the checkpoints as dev does?\n\n"
            + md_table(["task", "seed", "Spearman selection~dev over checkpoints", "selection's best step",
                        "dev's best step", "best dev", "CPU s"], seeds))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--render", action="store_true", help="the summary again from the kept runs")
    ap.add_argument("--tasks", default="stsb,mrpc")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--config", default="lor2c")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    if not a.render:
        done = {(r["task"], r["config"], r["cap"], r["every"], r["seed"]) for r in kept()}
        # seeds interleaved across tasks: a run cut short still has every task at its first seeds
        jobs = [[t, a.config, CAP, EVERY, int(s), GLUE_DIR, RAW] for s in a.seeds.split(",")
                for t in a.tasks.split(",")]
        jobs = [j for j in jobs if tuple(j[:5]) not in done]
        print(f"{len(jobs)} runs to do", flush=True)
        run_jobs(RUN, jobs, a.workers, lambda j, r: f"done {j[:5]}: dev {r['dev']:.4f} in {r['cpu_s']:.0f} CPU s")
    data = summarise()
    data["machine"] = machine_info()
    write_results("learning_curve", data, render, measured=not a.render)


if __name__ == "__main__":
    main()
