"""Real searches with the shipped defaults, to check the table's replay against (issue: prove the search is smart).

    python bench/real_searches.py --task sst2 --seeds 1 2     # one headline search per sampler seed

Each run is the headline command (`autolor2c search --task T --budget 0.1M`, every search default) with its own
`--seed`, and `--seeds 0 --no-baselines`: only the search phase is compared with the replay (hypervolume after
its configurations), so its retrain and the hand-set baselines are skipped. Each search has its own study in
bench/out/real/<task>-seed<N>/autolor2c.db; a killed run resumes its study when started again. A search that
finished is recorded in bench/results/real_searches_<task>.json and not run again (one script per seed may run
side by side; with OMP_NUM_THREADS=1 each, two of them use a 2-core machine better than one). Then:

    python bench/table_replay.py --real sqlite:///bench/out/real/sst2-seed1/autolor2c.db --real ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine_info, run_logged  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "autolor2c")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--budget", default="0.1M")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="sampler seeds, one search each")
    a = ap.parse_args()
    out_json = RESULTS / f"real_searches_{a.task}.json"
    data = json.loads(out_json.read_text()) if out_json.is_file() else {"task": a.task, "runs": {}}
    for seed in a.seeds:
        if str(seed) in data["runs"]:
            continue
        work = ROOT / "bench" / "out" / "real" / f"{a.task}-seed{seed}"
        work.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{work}/autolor2c.db"
        cmd = [CLI, "search", "--task", a.task, "--budget", a.budget, "--seed", str(seed), "--seeds", "0",
               "--no-baselines", "--no-progress", "--storage", storage, "--out", str(work / "out")]
        rc, wall = run_logged(cmd, work, work / "search.log")
        run = {"command": " ".join(cmd), "storage": storage, "rc": rc, "wall_s_of_this_start": round(wall, 1),
               "machine": machine_info(), **_study_span(storage)}
        # several of these scripts may run side by side (one per seed): merge into what is on disk now
        data = json.loads(out_json.read_text()) if out_json.is_file() else {"task": a.task, "runs": {}}
        data["runs"][str(seed)] = run
        out_json.write_text(json.dumps(data, indent=2))
        print(f"seed {seed}: rc {rc}, {run['configurations']} configurations in {run['search_span_s'] / 60:.1f} min",
              flush=True)


def _study_span(storage: str) -> dict:
    """The search's own span (first trial start to last trial end), which survives a resume or a rerun of a
    finished study, unlike the wall time of one start."""
    import optuna

    from autolor2c.search.study import trained_configurations

    name = optuna.get_all_study_names(storage)[0]
    study = optuna.load_study(study_name=name, storage=storage)
    starts = [t.datetime_start for t in study.trials if t.datetime_start]
    ends = [t.datetime_complete for t in study.trials if t.datetime_complete]
    return {"study": name, "configurations": trained_configurations(study), "optuna_trials": len(study.trials),
            "search_span_s": round((max(ends) - min(starts)).total_seconds(), 1) if ends else None}


if __name__ == "__main__":
    main()
