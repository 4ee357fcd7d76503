"""Where does a short run leave the input-blind score? The minimum resource of the search's rungs.

The hand-set built-in `sharelor2c` (the same training arguments a search rung gets: a complete short run,
its learning rate decayed to 0, evaluated once at its end) trained for 25, 50, 100, 200 and 400 optimiser
steps on SST-2, MRPC and STS-B, 2 seeds each, scored on the selection split beside the input-blind score.
The lowest rung must be at least the first step count where both seeds clear the input-blind score by a
margin (2 points) on every task. Resumable: each finished run is kept in the results file.

    python -m bench.speed.min_resource
"""

from __future__ import annotations

import json

from autolor2c.search.run import MIN_RUNG_STEPS
from bench.common import GLUE_DIR, RESULTS, machine_info, md_table, write_results

STEPS = (25, 50, 100, 200, 400)
TASKS = ("sst2", "mrpc", "stsb")
SEEDS = (0, 1)
MARGIN = 0.02
NAME = "min_resource"


def main() -> None:
    import sys

    path = RESULTS / f"{NAME}.json"
    if "--render" in sys.argv:  # the summary again from the kept runs
        write_results(NAME, json.loads(path.read_text()), render)
        return
    from autolor2c.search.run import SearchSettings, build_context
    from autolor2c.train import planned_steps, read_config_file, train

    path = RESULTS / f"{NAME}.json"
    data = json.loads(path.read_text()) if path.is_file() else {"runs": [], "machine": machine_info()}
    done = {(r["task"], r["steps"], r["seed"]) for r in data["runs"]}
    spec, plan_train = read_config_file("sharelor2c")
    for task in TASKS:
        settings = SearchSettings(task=task, data_dir=GLUE_DIR, progress=False, out="/tmp/autolor2c-bench-minres")
        ctx = build_context(settings)
        full = ctx.full_steps
        data.setdefault("tasks", {})[task] = {"trivial": ctx.trivial, "full_steps": full, "n_full": ctx.n_train_full}
        for steps in STEPS:
            for seed in SEEDS:
                if (task, steps, seed) in done or steps > full:
                    continue
                args = settings.train_args(plan_train, n_full=ctx.n_train_full, fraction=min(1.0, steps / full),
                                           seed=seed)
                assert abs(planned_steps(args, args.max_train_samples or ctx.n_train_full) - steps) <= 2
                r = train(ctx.task, spec, args, model_name=None, data_dir=GLUE_DIR)
                data["runs"].append({"task": task, "steps": r.steps, "planned": steps, "seed": seed,
                                     "selection": r.primary_score, "wall_s": r.wall_time_s, "n_train": r.n_train})
                print(task, steps, seed, r.primary_score, r.wall_time_s, flush=True)
                path.write_text(json.dumps(data, indent=2))
    write_results(NAME, data, render)


def render(data: dict) -> str:
    rows, clears = [], {}
    for task in TASKS:
        t = data["tasks"][task]
        for steps in STEPS:
            runs = [r for r in data["runs"] if r["task"] == task and r["planned"] == steps]
            if not runs:  # longer than the task's full run: never a rung there
                continue
            scores = [r["selection"] for r in runs]
            ok = bool(scores) and min(scores) > t["trivial"] + MARGIN
            clears.setdefault(task, []).append((steps, ok))
            rows.append([task, steps, ", ".join(f"{s:.4f}" for s in scores), f"{t['trivial']:.4f}", "yes" if ok else "no",
                         f"{sum(r['wall_s'] for r in runs) / max(1, len(runs)):.1f}"])
    first = {task: next((s for s, ok in c if ok and all(o for s2, o in c if s2 >= s)), None) for task, c in clears.items()}
    need = max((v for v in first.values() if v is not None), default=None)
    md = ("# Minimum resource: where the hand-set run (sharelor2c) leaves the input-blind score\n\n"
          f"Machine: {data['machine'].get('cpu')}. A run of N steps is a complete short schedule (a search rung).\n\n"
          + md_table(["task", "steps", "selection score (seeds 0, 1)", "input-blind", f"both > input-blind + {MARGIN}",
                      "wall s / run"], rows)
          + f"\nFirst step count from which both seeds clear it (and every longer run does), per task: {first}. "
            f"The lowest rung must be at least **{need}** steps on all three; the shipped `MIN_RUNG_STEPS` is "
            f"{MIN_RUNG_STEPS}.\n")
    return md


if __name__ == "__main__":
    main()
