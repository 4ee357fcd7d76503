"""What one search trial costs at each rung, measured side by side (issue 12, the replay's cost model).

The table (bench/table_build.py) records each run's wall time, but it was built on a shared machine (a
run's wall time swings 3-5x with other load) and each run also scored the dev set, which a search trial
never does. The replay needs the cost a trial pays, rung by rung. This script trains a few configurations
of the table exactly as a search trial does (``score_dev`` off), alternating rungs, several repeats, in one
run, and writes per rung the median over configurations of the fastest repeat: the ratio between rungs is what P4 depends on.

    python bench/table_cost.py            # -> bench/results/table_cost_<task>.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import GLUE_DIR, RESULTS, machine_info  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--budget", default="0.1M")
    ap.add_argument("--configs", default="0,4,5", help="table configurations to time (small to large)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--summarise", action="store_true", help="only recompute the per-rung seconds from the saved runs")
    a = ap.parse_args()
    path = RESULTS / f"table_cost_{a.task}.json"
    if a.summarise:
        out = json.loads(path.read_text())
        _write(path, out)
        return

    from table_build import read_table

    from autolor2c.search.space import TrialPlan
    from autolor2c.search.study import SearchSettings, build_context, plan_to_spec
    from autolor2c.train import train

    settings = SearchSettings(task=a.task, budget=a.budget, data_dir=GLUE_DIR, progress=False)
    ctx = build_context(settings)
    plans = {r["config"]: r["plan"] for r in read_table(a.task) if r.get("kind") == "config" and r["feasible"]}
    runs = []
    t0 = time.time()
    for rep in range(a.repeats):
        for k in (int(x) for x in a.configs.split(",")):
            plan = TrialPlan.from_dict(plans[k])
            for rung, frac in enumerate(settings.fidelity.fractions):
                args = settings.train_args(plan.train, stage="trial", n_full=ctx.n_train_full, fraction=frac, seed=rep)
                assert not args.score_dev  # what a trial pays
                r = train(ctx.task, plan_to_spec(plan), args, model_name=settings.model, data_dir=settings.data_dir)
                runs.append({"config": k, "rung": rung, "repeat": rep, "steps": r.steps, "wall_s": r.wall_time_s,
                             "cpu_s": r.cpu_time_s})
                print(f"config {k} rung {rung} repeat {rep}: {r.steps} steps, {r.wall_time_s:.1f}s", flush=True)
    _write(path, {"task": a.task, "machine": machine_info(), "elapsed_s": round(time.time() - t0, 1), "runs": runs})


def _write(path: Path, out: dict) -> None:
    runs = out["runs"]
    rungs = sorted({r["rung"] for r in runs})
    # the fastest repeat of each configuration (the one least disturbed by other load), then the median over
    # configurations
    out["rung_wall_s"] = {str(g): statistics.median(
        min(r["wall_s"] for r in runs if r["rung"] == g and r["config"] == k)
        for k in sorted({r["config"] for r in runs})) for g in rungs}
    out["low_to_top_ratio"] = out["rung_wall_s"][str(rungs[0])] / out["rung_wall_s"][str(rungs[-1])]
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("rung_wall_s", "low_to_top_ratio")}), f"-> {path}")


if __name__ == "__main__":
    main()
