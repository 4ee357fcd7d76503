"""The Ray kill-and-resume drill, repeated at several kill points: does a resumed search keep every finished
trial, mark the interrupted ones failed, re-run them, and reach the requested count every time?

The command is the CI drill's (tests/test_ray.py): ``--backend ray``, 2 CPUs, 1 trial at a time, 4 trials of
300 SST-2 examples. Each repeat kills the driver's whole process group (kill -9) ``delay`` seconds after the
first trial completes, then runs the same command again.

    python bench/ray_resume.py [--delays 0 1 2 3 4 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import GLUE_DIR, machine_info, md_table, write_results  # noqa: E402

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

TRIALS = 4
DONE = (TrialState.COMPLETE, TrialState.PRUNED)


def _cmd(db: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "autolor2c.cli", "search", "--backend", "ray", "--ray-num-cpus", "2",
            "--max-concurrent", "1", "--task", "sst2", "--budget", "1M", "--trials", str(TRIALS), "--seeds", "0",
            "--storage", f"sqlite:///{db}", "--study-name", "r", "--out", str(out), "--data-dir", GLUE_DIR,
            "--max-train-samples", "300", "--max-eval-samples", "32", "--max-length", "24", "--no-multi-fidelity",
            "--no-progress", "--sampler", "random"]


def _trials(storage: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="r", storage=storage).trials


def repeat(delay: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="ray-resume-"))
    db, storage = tmp / "k.db", f"sqlite:///{tmp / 'k.db'}"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.Popen(_cmd(db, tmp / "out"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    killed = False
    while proc.poll() is None:
        time.sleep(0.2)
        try:
            if any(t.state == TrialState.COMPLETE for t in _trials(storage)):
                time.sleep(delay)
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
                break
        except Exception:  # the study is not created yet, or the database is locked by the writer
            continue
    proc.wait()
    before = {t.number: (t.params, t.values) for t in _trials(storage) if t.state == TrialState.COMPLETE}
    t0 = time.perf_counter()
    p = subprocess.run(_cmd(db, tmp / "out"), capture_output=True, text=True, env=env)
    after = _trials(storage)
    by_number = {t.number: t for t in after}
    interrupted = [t.number for t in after if t.state == TrialState.FAIL
                   and str(t.user_attrs.get("fail_reason", "")).startswith("interrupted")]
    return {
        "delay_s": delay, "killed": killed, "resume_rc": p.returncode, "resume_s": round(time.perf_counter() - t0, 1),
        "restored": "resuming the Ray experiment" in p.stdout,
        "complete_before_kill": len(before),
        "kept": sum(by_number[n].params == pv[0] and by_number[n].values == pv[1] for n, pv in before.items()),
        "interrupted": interrupted,
        "retries": {t.number: t.user_attrs["retry_of"] for t in after if "retry_of" in t.user_attrs},
        "done_after": sum(t.state in DONE for t in after),
        "running_after": sum(t.state == TrialState.RUNNING for t in after),
        "other_failures": sum(t.state == TrialState.FAIL for t in after) - len(interrupted),
    }


def render(d: dict) -> str:
    rows = [[r["delay_s"], r["complete_before_kill"], f"{r['kept']}/{r['complete_before_kill']}",
             ", ".join(map(str, r["interrupted"])) or "-",
             ", ".join(f"{k}<-{v}" for k, v in r["retries"].items()) or "-", r["restored"],
             f"{r['done_after']}/{TRIALS}", r["running_after"], r["other_failures"], r["resume_rc"]]
            for r in d["repeats"]]
    ok = sum(r["killed"] and r["resume_rc"] == 0 and r["done_after"] >= TRIALS and r["running_after"] == 0
             and r["kept"] == r["complete_before_kill"] and r["other_failures"] == 0 for r in d["repeats"])
    return ("# Ray kill-and-resume drill at several kill points\n\n"
            f"kill -9 of the driver's process group `delay` s after the first trial completes, then the same "
            f"command again ({TRIALS} trials requested). **{ok}/{len(d['repeats'])} repeats** kept every finished "
            "trial, left none RUNNING, no failure other than the interrupted ones, and reached the count.\n\n"
            + md_table(["delay s", "complete at kill", "kept", "interrupted (FAIL)", "retry <- of",
                        "Tune restore", "done after", "RUNNING after", "other FAIL", "rc"], rows))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--delays", type=float, nargs="+", default=[0, 1, 2, 3, 4, 5])
    a = ap.parse_args()
    data = {"benchmark": "ray_resume", "machine": machine_info(), "trials": TRIALS, "repeats": []}
    for delay in a.delays:
        data["repeats"].append(repeat(delay))
        print(data["repeats"][-1], flush=True)
        write_results("ray_resume", data, render)


if __name__ == "__main__":
    main()
