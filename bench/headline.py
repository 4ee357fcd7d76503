"""P6: the headline command with all defaults on this machine, timed end to end:

    autolor2c search --task sst2 --budget 0.1M        (data from ../shared/data/glue via AUTOLOR2C_DATA_DIR)

Run in a fresh working directory so the default storage (studies/autolor2c.db) starts empty. Reports the
wall time of the search and of the 3-seed retrain, the front, and the retrained SST-2 dev accuracy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import GLUE_DIR, RESULTS, machine_info, md_table, write_results  # noqa: E402


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="headline-"))
    env = {**os.environ, "AUTOLOR2C_DATA_DIR": GLUE_DIR, "PYTHONUNBUFFERED": "1"}
    cmd = ["autolor2c", "search", "--task", "sst2", "--budget", "0.1M", *sys.argv[1:]]
    log_path = RESULTS / "headline.log"
    t0 = time.time()
    marks = {}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if line.startswith("retraining trial") and "search_end" not in marks:
                marks["search_end"] = time.time() - t0
        rc = proc.wait()
    total = time.time() - t0
    import optuna

    storage = f"sqlite:///{work}/studies/autolor2c.db"
    name = optuna.get_all_study_names(storage)[0]
    study = optuna.load_study(study_name=name, storage=storage)
    front = []
    for t in sorted(study.best_trials, key=lambda t: t.values[1]):
        if t.user_attrs.get("feasible"):
            front.append({"trial": t.number, "accuracy": t.values[0], "params": int(t.values[1]),
                          "structure": t.user_attrs.get("final_structure"), "plan": t.user_attrs.get("plan")})
    retrain = json.loads((work / "studies" / name / "retrain.json").read_text()) if (work / "studies" / name / "retrain.json").is_file() else None
    states = {}
    for t in study.trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    data = {"command": " ".join(cmd), "rc": rc, "study": name, "total_wall_s": round(total, 1),
            "search_wall_s": round(marks.get("search_end", total), 1),
            "retrain_wall_s": round(total - marks["search_end"], 1) if "search_end" in marks else None,
            "trial_states": states, "front": front, "retrain": retrain,
            "best_trial_accuracy": max((f["accuracy"] for f in front), default=None),
            "cost": study.user_attrs.get("cost"), "machine": machine_info(), "workdir": str(work)}

    def render(d):
        rows = [[f["trial"], f"{f['accuracy']:.4f}", f"{f['params']:,}",
                 json.dumps(f["structure"], separators=(",", ":"))[:90]] for f in d["front"]]
        r = d["retrain"]
        rt = (f"{r['mean']:.4f} ± {r['std']:.4f} over {r['seeds']} seeds ({', '.join(format(x['score'], '.4f') for x in r['runs'])}), "
              f"trial {r['trial']}, {r['params']:,} params, {r['n_train']:,} training examples" if r else "none")
        return (f"# P6: the headline command with all defaults\n\n`{d['command']}` (AUTOLOR2C_DATA_DIR={GLUE_DIR}), exit {d['rc']}\n\n"
                f"- total wall time: **{d['total_wall_s'] / 60:.1f} min** (search {d['search_wall_s'] / 60:.1f} min, "
                f"retrain {(d['retrain_wall_s'] or 0) / 60:.1f} min); target <= 30 min\n"
                f"- trials: {d['trial_states']}\n- best feasible trial accuracy (4000-example trials): {d['best_trial_accuracy']}\n"
                f"- retrained SST-2 dev accuracy: **{rt}**; target >= 0.85\n\n## Front\n\n"
                + md_table(["trial", "accuracy", "params", "final structure"], rows))
    write_results("headline", data, render)


if __name__ == "__main__":
    main()
