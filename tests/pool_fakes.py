"""A stand-in for ``retrain._one_run`` that a spawned worker process can import (a test's local function
cannot cross to another process): seed 0 is slow, seed 1 quick, seed 2 fails, the rest take a second; each
run leaves a file saying that it started."""

from __future__ import annotations

import time
from pathlib import Path


def timed_run(task, spec, args, model_name, data_dir, out_dir) -> dict:
    seed = args["seed"]
    (Path(args["dir"]) / f"started-{seed}").touch()
    if seed == 2:
        raise RuntimeError("seed 2 failed")
    time.sleep({0: 2.0, 1: 0.0}.get(seed, 1.0))
    return {"selection": 0.5, "params": 1}
