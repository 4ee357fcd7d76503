"""Issue 3 acceptance: `autolor2c train --task sst2 --config imlor2c` with the CLI's defaults on this CPU
(full SST-2 train, dev 872): dev accuracy after each epoch and the wall time to reach it; and the quick
check `--max-train-samples 4000 --epochs 1`.

    python bench/train_default.py [--epochs E] [--config imlor2c]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import GLUE_DIR, machine_info, md_table, write_results  # noqa: E402


def run(args: list[str], out: Path) -> tuple[dict, float]:
    cmd = ["autolor2c", "train", "--task", "sst2", "--data-dir", GLUE_DIR, "--out", str(out), *args]
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads((out / "metrics.json").read_text()), time.time() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="imlor2c")
    p.add_argument("--epochs", default=None)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="train-default-"))
    extra = ["--config", a.config] + (["--epochs", a.epochs] if a.epochs else [])
    full, full_wall = run(extra, tmp / "full")
    quick, quick_wall = run(["--config", a.config, "--max-train-samples", "4000", "--epochs", "1"], tmp / "quick")
    data = {"config": a.config, "epochs_flag": a.epochs, "full": {k: full[k] for k in (
        "primary_score", "trainable_params", "head_params", "steps", "epochs", "wall_time_s", "n_train", "evals", "history")},
        "full_process_wall_s": round(full_wall, 1), "quick": {k: quick[k] for k in (
        "primary_score", "steps", "wall_time_s", "n_train")}, "quick_process_wall_s": round(quick_wall, 1),
        "train_args": full["train_args"], "machine": machine_info()}
    for e in data["full"]["history"]:
        e.pop("scores", None)

    def render(d):
        rows = [[e["epoch"], e["step"], f"{e['accuracy']:.4f}"] for e in d["full"]["evals"]]
        return (f"# `autolor2c train --task sst2 --config {a.config}` with the CLI defaults\n\n"
                f"Full SST-2 train ({d['full']['n_train']:,} examples), lr {d['train_args']['learning_rate']}, batch "
                f"{d['train_args']['batch_size']}, {d['full']['epochs']} epoch(s): best dev accuracy "
                f"**{d['full']['primary_score']:.4f}** in **{d['full_process_wall_s'] / 60:.1f} min** (whole command; "
                f"training loop {d['full']['wall_time_s'] / 60:.1f} min); {d['full']['trainable_params']:,} adapter params. "
                f"Targets: >= 0.85 within 15 min.\n\n" + md_table(["epoch", "step", "dev accuracy"], rows)
                + f"\nQuick check `--max-train-samples 4000 --epochs 1`: accuracy {d['quick']['primary_score']:.4f} in "
                  f"{d['quick_process_wall_s']:.0f}s (whole command).\n")
    write_results(f"train_default_{a.config}", data, render)


if __name__ == "__main__":
    main()
