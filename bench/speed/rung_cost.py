"""What each rung of the shipped search costs, and the fixed cost of a trial, as fractions of the top rung.

On SST-2 with the shipped defaults (rungs from ``SearchSettings``: 1/9, 1/3, 1 of the full 2,043-step run),
one process trains the hand-set `sharelor2c` as a trial at each rung (``SearchSettings.train_args``, the
search's own arguments), side by side, after one warm-up run that loads the model, tokenizer and data (a
search's worker loads them once). The fixed cost of a trial is a run of one optimiser step at the lowest
rung's arguments: copying the backbone, batching the data, one evaluation of the selection split.
Targets (issue 19): fixed <= 15% of the lowest rung; each rung <= its fraction + 0.1 of the top rung.

    python -m bench.speed.rung_cost
"""

from __future__ import annotations

import dataclasses

from bench.common import GLUE_DIR, machine_info, md_table, write_results


def main() -> None:
    from autolor2c.search.run import SearchSettings, build_context
    from autolor2c.train import read_config_file, train

    settings = SearchSettings(task="sst2", data_dir=GLUE_DIR, progress=False, out="/tmp/autolor2c-bench-rungs")
    ctx = build_context(settings)
    spec, plan_train = read_config_file("sharelor2c")
    data = {"machine": machine_info(), "rungs": list(ctx.fidelity.fractions), "full_steps": ctx.full_steps, "runs": []}
    low = settings.train_args(plan_train, n_full=ctx.n_train_full, fraction=ctx.fidelity.fractions[0])
    train(ctx.task, spec, dataclasses.replace(low, max_steps=1), data_dir=GLUE_DIR)  # warm-up: load once
    fixed = train(ctx.task, spec, dataclasses.replace(low, max_steps=1), data_dir=GLUE_DIR)
    data["fixed_s"] = fixed.wall_time_s
    for frac in ctx.fidelity.fractions:
        args = settings.train_args(plan_train, n_full=ctx.n_train_full, fraction=frac)
        r = train(ctx.task, spec, args, data_dir=GLUE_DIR)
        data["runs"].append({"fraction": frac, "steps": r.steps, "n_train": r.n_train, "wall_s": r.wall_time_s,
                             "evals": len(r.evals), "selection": r.primary_score, "dev": r.dev_score})
        print(frac, r.steps, r.wall_time_s, flush=True)
    top = data["runs"][-1]["wall_s"]
    data["fixed_over_lowest"] = data["fixed_s"] / data["runs"][0]["wall_s"]
    for run in data["runs"]:
        run["of_top"] = run["wall_s"] / top
        run["meets"] = run["of_top"] <= run["fraction"] + 0.1
    write_results("rung_cost_sst2", data, render)


def render(d: dict) -> str:
    rows = [[f"{r['fraction']:.3g}", r["steps"], r["n_train"], r["evals"], f"{r['wall_s']:.1f}", f"{r['of_top']:.3f}",
             f"<= {r['fraction'] + 0.1:.3f}: {'yes' if r['meets'] else 'no'}", f"{r['selection']:.4f}"] for r in d["runs"]]
    return ("# Cost of each rung of the shipped search (SST-2, sharelor2c), side by side in one process\n\n"
            f"Machine: {d['machine']['cpu']}, {d['machine']['torch_threads']} threads, load at start "
            f"{d['machine']['loadavg_at_start']}.\n\n"
            + md_table(["rung", "steps", "rows", "evaluations", "wall s", "of the top rung", "target", "selection"], rows)
            + f"\nFixed cost of a trial (one step at the lowest rung, warm worker): {d['fixed_s']:.1f} s = "
              f"**{d['fixed_over_lowest']:.1%}** of the lowest rung (target <= 15%).\n")


if __name__ == "__main__":
    main()
