"""Does a top-rung trial rank learning rates the same on a second seed? And where is the lr range's edge?

Now that a trial's top rung is the full run, the learning rate is searched. For the hand-set built-in
`sharelor2c` on STS-B (and MRPC, SST-2 with --mrpc, --sst2), each lr of a log grid trains the top
rung (``SearchSettings.train_args``, the run `autolor2c train` makes) with seeds 0 and 1. Reported: the
selection score per (lr, seed), Spearman's rho between the two seeds' lr rankings, and whether the best lr
is inside the default space's range. Resumable: each run is kept in the results file as it finishes.

    python -m bench.quality.lr_seed_ranking [--mrpc] [--sst2]
"""

from __future__ import annotations

import argparse
import json

from bench.common import GLUE_DIR, RESULTS, machine_info, md_table, write_results

LRS = (2.5e-4, 2e-3, 8e-3)  # below the range, the default, its top edge
CONFIGS = ("sharelor2c",)
NAME = "lr_seed_ranking"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sst2", action="store_true", help="also SST-2 (about 6 min a run on 2 cores)")
    ap.add_argument("--mrpc", action="store_true", help="also MRPC (its sentence pairs make a run 2-5x STS-B's)")
    a = ap.parse_args()
    from autolor2c.search.run import SearchSettings, build_context
    from autolor2c.train import read_config_file, train

    path = RESULTS / f"{NAME}.json"
    data = json.loads(path.read_text()) if path.is_file() else {"runs": [], "machine": machine_info()}
    done = {(r["task"], r["config"], r["lr"], r["seed"]) for r in data["runs"]}
    for task in ("stsb",) + (("mrpc",) if a.mrpc else ()) + (("sst2",) if a.sst2 else ()):
        settings = SearchSettings(task=task, data_dir=GLUE_DIR, progress=False, out="/tmp/autolor2c-bench-lr")
        ctx = build_context(settings)
        for config in CONFIGS:
            spec, plan_train = read_config_file(config)
            for seed in (0, 1):
                for lr in LRS:
                    if (task, config, lr, seed) in done:
                        continue
                    args = settings.train_args({**plan_train, "learning_rate": lr}, seed=seed)
                    r = train(ctx.task, spec, args, model_name=None, data_dir=GLUE_DIR)
                    data["runs"].append({"task": task, "config": config, "lr": lr, "seed": seed,
                                         "selection": r.primary_score, "dev": r.dev_score, "steps": r.steps,
                                         "wall_s": r.wall_time_s})
                    print(task, config, lr, seed, r.primary_score, r.dev_score, r.wall_time_s, flush=True)
                    path.write_text(json.dumps(data, indent=2))
    write_results(NAME, data, render)


def render(data: dict) -> str:
    from scipy.stats import spearmanr

    from autolor2c.search.space import load_space

    spec = load_space("lor2c_full").params["learning_rate"]
    rows, rhos = [], []
    for task, config in sorted({(r["task"], r["config"]) for r in data["runs"]}):
        by = {(r["lr"], r["seed"]): r for r in data["runs"] if r["task"] == task and r["config"] == config}
        lrs = sorted({lr for lr, _ in by})
        if not all((lr, s) in by for lr in lrs for s in (0, 1)):
            continue
        s0 = [by[(lr, 0)]["selection"] for lr in lrs]
        s1 = [by[(lr, 1)]["selection"] for lr in lrs]
        rho = spearmanr(s0, s1).statistic
        rhos.append(rho)
        best = [max(lrs, key=lambda lr: by[(lr, s)]["selection"]) for s in (0, 1)]
        rows.append([task, config, " / ".join(f"{lr:g}: {a:.3f}, {b:.3f}" for lr, a, b in zip(lrs, s0, s1)),
                     f"{rho:.2f}", f"{best[0]:g}, {best[1]:g}",
                     "yes" if all(spec.low <= b <= spec.high for b in best) else "no"])
    return ("# Learning-rate ranking of a top-rung trial on two seeds\n\n"
            f"Machine: {data['machine'].get('cpu')}. Selection score per lr (seed 0, seed 1); default space lr range "
            f"[{spec.low:g}, {spec.high:g}] (log).\n\n"
            + md_table(["task", "config", "lr: seed 0, seed 1", "Spearman rho", "best lr (seed 0, 1)", "best inside range"],
                       rows)
            + (f"\nMean Spearman rho over task/config pairs: {sum(rhos) / len(rhos):.2f}.\n" if rhos else ""))


if __name__ == "__main__":
    main()
