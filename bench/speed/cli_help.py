"""How fast the CLI answers: `autolor2c --help`, `autolor2c search --help` and a bad flag value
(`search --budget 10MB`), each a fresh process, median of a few repeats. With --baseline REV the same
commands are timed on that git revision too (checked out with `git archive` into a temp folder).

    python bench/cli_help.py [--repeats 5] [--baseline 94462af]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine_info, md_table, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "autolor2c --help": ["--help"],
    "autolor2c search --help": ["search", "--help"],
    "autolor2c search --budget 10MB (bad value)": ["search", "--budget", "10MB"],
}


def time_commands(root: Path, repeats: int) -> dict[str, dict]:
    env = dict(os.environ, PYTHONPATH=str(root), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    out = {}
    with tempfile.TemporaryDirectory() as cwd:  # no studies/ or data written into the repo
        for name, argv in COMMANDS.items():
            times, codes = [], set()
            for _ in range(repeats):
                t0 = time.perf_counter()
                p = subprocess.run([sys.executable, "-m", "autolor2c.cli", *argv], env=env, cwd=cwd,
                                   capture_output=True, text=True)
                times.append(time.perf_counter() - t0)
                codes.add(p.returncode)
            out[name] = {"median_s": statistics.median(times), "times_s": times, "exit_codes": sorted(codes)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--baseline", default=None, help="git revision to time as well (the CLI before a change)")
    a = ap.parse_args()
    data = {"machine": machine_info(), "repeats": a.repeats, "python": sys.executable,
            "current": time_commands(REPO, a.repeats)}
    if a.baseline:
        rev = subprocess.run(["git", "rev-parse", "--short", a.baseline], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(f"git archive {rev} autolor2c | tar -x -C {tmp}", shell=True, cwd=REPO, check=True)
            data["baseline"] = {"rev": rev, **time_commands(Path(tmp), max(2, a.repeats // 2))}

    def render(d: dict) -> str:
        base = d.get("baseline")
        header = ["command", "median s (this tree)", "exit"] + ([f"median s ({base['rev']})"] if base else [])
        rows = []
        for name, r in d["current"].items():
            row = [f"`{name}`", f"{r['median_s']:.3f}", ",".join(map(str, r["exit_codes"]))]
            if base:
                row.append(f"{base[name]['median_s']:.3f}")
            rows.append(row)
        m = d["machine"]
        return (f"# CLI response time\n\nEach command a fresh `python -m autolor2c.cli` process, median of "
                f"{d['repeats']} runs; CPU {m['cpu']} ({m['cores_visible']} cores visible), load average at start "
                f"{m['loadavg_at_start'][0]:.2f}.\n\n" + md_table(header, rows))

    write_results("cli_help", data, render)


if __name__ == "__main__":
    main()
