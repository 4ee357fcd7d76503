"""Would another pick rule dominate the hand-set built-ins? (issue 11's P6 miss: `--pick best` took the
largest configuration on every task, which never dominates a built-in with a quarter of its params.)

    python bench/front_pick_rule.py --task sst2 --search 1 --search 2     # real searches of bench/real_searches.py

The rule tried: from a finished search's trial front, the best-scoring point with at most the params of the
best hand-set built-in (its retrained dev and params from bench/results/p6_<task>.json). That point is
retrained by the product's own command (`autolor2c retrain --trial N --seeds S`: all of the training set but
the selection split, the trial's fixed final structure, its training arguments) and its dev score set beside
the built-in's. Each retrain is recorded in bench/results/front_pick_rule_<task>.json as it ends (several of
these scripts may run side by side, one per search; each merges into the file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine_info, run_logged  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "autolor2c")


def candidate(storage: str, max_params: int):
    """The rule: the best trial score on the front among points with at most ``max_params``."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    fits = [t for t in study.best_trials if t.values[1] <= max_params]
    return max(fits, key=lambda t: (t.values[0], -t.values[1])) if fits else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--search", type=int, action="append", required=True,
                    help="sampler seed of a real search in bench/out/real/<task>-seed<N> (repeatable)")
    ap.add_argument("--seeds", type=int, default=2, help="retrain seeds")
    a = ap.parse_args()
    p6 = json.loads((RESULTS / f"p6_{a.task}.json").read_text())
    top = max(p6["baselines"]["configs"], key=lambda c: c["dev_mean"])
    out_json = RESULTS / f"front_pick_rule_{a.task}.json"
    for s in a.search:
        work = ROOT / "bench" / "out" / "real" / f"{a.task}-seed{s}"
        storage = f"sqlite:///{work}/autolor2c.db"
        t = candidate(storage, top["params"])
        if t is None:
            print(f"search {s}: no front point with at most {top['params']:,} params")
            continue
        out = work / "pick_rule"
        cmd = [CLI, "retrain", "--storage", storage, "--trial", str(t.number), "--seeds", str(a.seeds),
               "--out", str(out), "--no-progress"]
        rc, wall = run_logged(cmd, work, work / "pick_rule.log")
        pick = json.loads((out / "retrain.json").read_text())["pick"] if rc == 0 else {}
        row = {"search": s, "storage": storage, "trial": t.number, "trial_score": t.values[0],
               "params": int(t.values[1]), "rc": rc, "wall_s": round(wall, 1),
               "dev_mean": pick.get("dev_mean"), "dev_std": pick.get("dev_std"),
               "dev_runs": [r["dev"] for r in pick.get("runs", [])], "selection_mean": pick.get("selection_mean"),
               "retrained_params": pick.get("params"),
               "builtin": {k: top[k] for k in ("config", "dev_mean", "params", "seeds")},
               "dominates": bool(pick) and pick["dev_mean"] > top["dev_mean"] and pick["params"] <= top["params"],
               "machine": machine_info(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}
        data = json.loads(out_json.read_text()) if out_json.is_file() else {"task": a.task, "runs": {}}
        data["runs"][str(s)] = row
        out_json.write_text(json.dumps(data, indent=2, default=str))
        print(f"search {s}: trial {t.number} ({row['params']:,} params, trial score {t.values[0]:.4f}) retrained "
              f"dev {row['dev_mean']} vs {top['config']} {top['dev_mean']:.4f} ({top['params']:,}): "
              f"{'dominates' if row['dominates'] else 'does not dominate'}", flush=True)


if __name__ == "__main__":
    main()
