"""Shared helpers for the benchmark scripts in bench/ (not a benchmark itself)."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# The GLUE folder: $AUTOLOR2C_DATA_DIR, else shared/data/glue beside the repo (../shared/data/glue).
GLUE_DIR = os.environ.get("AUTOLOR2C_DATA_DIR") or str(Path(__file__).resolve().parents[2] / "shared" / "data" / "glue")


def machine_info() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import peft
    import transformers

    return {
        "cpu": cpu,
        "cores_visible": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
        "loadavg_at_start": list(os.getloadavg()),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def write_results(name: str, data: dict, render, measured: bool = True) -> None:
    """Write results/<name>.json and results/<name>.md (``render(data)`` gives the md; a string is used as it is) and print the md.
    ``measured`` False (a script's --render): the machine's end-of-run load and time stay those of the run."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    if measured:
        data.setdefault("machine", {})["loadavg_at_end"] = list(os.getloadavg())
        data["machine"]["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    md = render(data) if callable(render) else str(render)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=str))
    (RESULTS / f"{name}.md").write_text(md)
    print(md)


def md_table(header: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def find_embeddings(model: torch.nn.Module) -> torch.nn.Module:
    """The module whose output is the hidden state entering layer 0 (BERT: ``bert.embeddings``)."""
    for name, mod in model.named_modules():
        if name.endswith("bert.embeddings") or name == "embeddings":
            return mod
    raise RuntimeError("no embeddings module found")


def run_logged(cmd: list[str], cwd: Path, log: Path, stamped: Path | None = None) -> tuple[int, float]:
    """Run a CLI command offline on the GLUE folder, its output appended to ``log``: (exit code, wall seconds).
    With ``stamped``, each line also goes there after the time it appeared (a run's stages are read off it)."""
    import subprocess

    env = {**os.environ, "AUTOLOR2C_DATA_DIR": GLUE_DIR, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    t0 = time.time()
    with open(log, "a") as f:
        f.write(f"$ {' '.join(cmd)}\n")
        f.flush()
        if stamped is None:
            rc = subprocess.call(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT)
            return rc, time.time() - t0
        with open(stamped, "a") as g:
            g.write(f"{t0:.1f}\t$ {' '.join(cmd)}\n")
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for line in proc.stdout:
                f.write(line)
                f.flush()
                g.write(f"{time.time():.1f}\t{line.rstrip()[:300]}\n")
                g.flush()
            rc = proc.wait()
    return rc, time.time() - t0


def run_jobs(script: str, jobs: list[list[str]], workers: int, done_line) -> None:
    """Run ``python -c script *job`` for each job, ``workers`` 1-thread processes at a time, offline. Each
    process appends its own result to the benchmark's raw file and prints ``RESULT <json>``, so a killed driver
    loses nothing finished; ``done_line(job, record)`` says what one finished run measured."""
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    todo, running = list(jobs), []
    while todo or running:
        while todo and len(running) < workers:
            job = todo.pop(0)
            running.append((job, subprocess.Popen([sys.executable, "-c", script, *map(str, job)], env=env,
                                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)))
        time.sleep(2)
        for item in list(running):
            job, p = item
            if p.poll() is None:
                continue
            running.remove(item)
            lines = [ln for ln in p.stdout.read().splitlines() if ln.startswith("RESULT ")]
            if p.returncode or not lines:
                print(f"FAILED {job} rc={p.returncode}", flush=True)
                continue
            print(done_line(job, json.loads(lines[-1][len("RESULT "):])), flush=True)
