"""Both cores: two worker processes with one thread each, or one process with two threads?

The same two runs (the hand-set `sharelor2c` at the shipped search's lowest SST-2 rung, seeds 0 and 1) are
trained one after the other in one process with 2 threads, then at the same time in two processes with
1 thread each; wall time of each arm and the scores of each run (are results the same whatever the split?).
Run it on an otherwise idle machine.

    python -m bench.speed.workers
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from bench.common import GLUE_DIR, machine_info, md_table, write_results

RUN = """
import json, sys
from autolor2c.search.run import SearchSettings, build_context
from autolor2c.train import read_config_file, train
s = SearchSettings(task="sst2", data_dir=sys.argv[1], progress=False, out="/tmp/autolor2c-bench-workers")
ctx = build_context(s)
spec, pt = read_config_file("sharelor2c")
out = []
for seed in map(int, sys.argv[2].split(",")):
    r = train(ctx.task, spec, s.train_args(pt, n_full=ctx.n_train_full, fraction=ctx.fidelity.fractions[0], seed=seed),
              data_dir=sys.argv[1])
    out.append({"seed": seed, "selection": r.primary_score, "wall_s": r.wall_time_s, "steps": r.steps})
print(json.dumps(out))
"""


def _launch(threads: int, seeds: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    return subprocess.Popen([sys.executable, "-c", RUN, GLUE_DIR, seeds], env=env, stdout=subprocess.PIPE, text=True)


def main() -> None:
    data = {"machine": machine_info()}
    t0 = time.time()
    p = _launch(2, "0,1")
    seq = json.loads(p.communicate()[0].strip().splitlines()[-1])
    data["one_process_two_threads"] = {"wall_s": time.time() - t0, "runs": seq}
    t0 = time.time()
    ps = [_launch(1, "0"), _launch(1, "1")]
    par = [json.loads(p.communicate()[0].strip().splitlines()[-1])[0] for p in ps]
    data["two_processes_one_thread"] = {"wall_s": time.time() - t0, "runs": par}
    data["speedup"] = data["one_process_two_threads"]["wall_s"] / data["two_processes_one_thread"]["wall_s"]
    data["same_scores"] = [a["selection"] for a in seq] == [b["selection"] for b in par]
    write_results("workers", data, render)


def render(d: dict) -> str:
    rows = [[arm, f"{d[arm]['wall_s']:.1f}", ", ".join(f"{r['selection']:.4f}" for r in d[arm]["runs"])]
            for arm in ("one_process_two_threads", "two_processes_one_thread")]
    return ("# Two 1-thread worker processes vs one 2-thread process (two SST-2 lowest-rung runs)\n\n"
            f"Machine: {d['machine']['cpu']}, load at start {d['machine']['loadavg_at_start']}.\n\n"
            + md_table(["arm", "wall s (incl. start-up)", "selection scores (seeds 0, 1)"], rows)
            + f"\nTwo processes are **{d['speedup']:.2f}x** as fast; same scores: {d['same_scores']}.\n")


if __name__ == "__main__":
    main()
