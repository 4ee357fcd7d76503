"""P3 (samplers vs random) and P4 (multi-fidelity vs full fidelity) on SST-2 with the embedded model,
the default space (lor2c_full) and budget 0.1M. Hypervolume uses one fixed reference point:
(accuracy 0.5 = chance on SST-2, params = budget), params divided by the budget.

    python bench/search_bench.py samplers [--trials 40] [--seeds 0 1 2] [--train 512] [--eval 300]
    python bench/search_bench.py fidelity [--trials 12] [--seeds 0 1 2] [--train 1500] [--eval 300]

Trials are small (a few hundred examples) so that every arm fits in minutes on 2 cores; the absolute
accuracies are therefore low, and the comparison is between arms run identically.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import GLUE_DIR, machine_info, md_table, write_results  # noqa: E402

from autolor2c.search.fidelity import Fidelity  # noqa: E402
from autolor2c.search.pareto import hypervolume  # noqa: E402
from autolor2c.search.study import SearchSettings, hypervolume_history, is_feasible, run_search  # noqa: E402

BUDGET = "0.1M"
FLOOR = 0.5  # reference accuracy: SST-2 is balanced (majority class 0.509 on dev), so 0.5 is chance


def _run(tmp: Path, name: str, **kw) -> dict:
    settings = SearchSettings(task="sst2", budget=BUDGET, data_dir=GLUE_DIR, storage=f"sqlite:///{tmp}/{name}.db",
                              study_name=name, seeds=0, progress=False, **kw)
    t0 = time.time()
    study, ctx, _, _ = run_search(settings)
    wall = time.time() - t0
    hist = hypervolume_history(study, ctx.budget)
    if FLOOR:  # the same curve against the chance-level reference point
        by_number = {t.number: t for t in study.trials}
        pts = []
        for h in hist:
            t = by_number[h["trial"]]
            if is_feasible(t):
                pts.append((t.values[0], t.values[1]))
            h["hypervolume"] = hypervolume(pts, ctx.budget, score_floor=FLOOR)
    return {"wall_s": round(wall, 2), "history": hist, "n_trials": len(study.trials),
            "final_hv": hist[-1]["hypervolume"] if hist else 0.0}


def samplers(a) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="p3-"))
    arms = {}
    for sampler in a.samplers:
        for seed in a.seeds:
            r = _run(tmp, f"{sampler}-{seed}", sampler=sampler, seed=seed, trials=a.trials, max_train_samples=a.train,
                     max_eval_samples=a.eval, max_length=64, fidelity=Fidelity.off())
            arms.setdefault(sampler, []).append(r)
            print(f"{sampler} seed {seed}: final hv {r['final_hv']:.4f} in {r['wall_s']:.0f}s", flush=True)

    def mean_curve(runs):
        n = min(len(r["history"]) for r in runs)
        return [statistics.fmean(r["history"][k]["hypervolume"] for r in runs) for k in range(n)]

    curves = {s: mean_curve(rs) for s, rs in arms.items()}
    target = curves["random"][min(len(curves["random"]), 40) - 1] if "random" in curves else None
    rows, summary = [], {}
    for s, c in curves.items():
        reach = next((k + 1 for k, v in enumerate(c) if target is not None and v >= target), None)
        finals = [r["final_hv"] for r in arms[s]]
        summary[s] = {"trials_to_random_40": reach, "final_mean": statistics.fmean(finals),
                      "final_std": statistics.stdev(finals) if len(finals) > 1 else 0.0,
                      "wall_s_mean": statistics.fmean(r["wall_s"] for r in arms[s])}
        rows.append([s, f"{summary[s]['final_mean']:.4f} ± {summary[s]['final_std']:.4f}",
                     reach if reach is not None else f"not within {len(c)}", f"{summary[s]['wall_s_mean']:.0f}"])
    data = {"what": "P3: hypervolume after each trial per sampler (mean over seeds)", "budget": BUDGET,
            "reference_point": {"accuracy": FLOOR, "params": "budget (params divided by the budget)"},
            "trial": {"train_examples": a.train, "eval_examples": a.eval, "epochs": 1, "max_length": 64,
                      "multi_fidelity": False}, "seeds": a.seeds, "trials": a.trials,
            "random_hv_at_40": target, "summary": summary, "curves": curves, "machine": machine_info(),
            "runs": {s: [{"final_hv": r["final_hv"], "wall_s": r["wall_s"], "hv": [h["hypervolume"] for h in r["history"]]}
                         for r in rs] for s, rs in arms.items()}}

    def render(d):
        return (f"# P3: samplers on the default space, SST-2, budget {BUDGET}\n\n"
                f"Trials of {a.train} training / {a.eval} dev examples, 1 epoch, no multi-fidelity; "
                f"seeds {a.seeds}; {a.trials} trials per run. Reference point: accuracy {FLOOR} (chance), params = budget.\n"
                f"Random's mean hypervolume after 40 trials: {target if target is None else round(target, 4)}.\n\n"
                + md_table(["sampler", "final hypervolume (mean ± std)", "trials to reach random@40 (mean curve)",
                            "wall s per run"], rows))
    write_results("p3_samplers", data, render)


def fidelity(a) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="p4-"))
    rows, runs = [], []
    for seed in a.seeds:
        full = _run(tmp, f"full-{seed}", sampler=a.sampler, seed=seed, trials=a.trials, max_train_samples=a.train,
                    max_eval_samples=a.eval, max_length=64, fidelity=Fidelity.off())
        target = full["final_hv"]
        mf = _run(tmp, f"mf-{seed}", sampler=a.sampler, seed=seed, trials=a.mf_trials, max_train_samples=a.train,
                  max_eval_samples=a.eval, max_length=64, fidelity=Fidelity.geometric())
        reach = next((h["cost_s"] for h in mf["history"] if h["hypervolume"] >= 0.98 * target), None)
        full_cost = full["history"][-1]["cost_s"] if full["history"] else None
        ratio = reach / full_cost if reach is not None and full_cost else None
        runs.append({"seed": seed, "full_final_hv": target, "full_cost_s": full_cost, "mf_final_hv": mf["final_hv"],
                     "mf_cost_to_reach_s": reach, "ratio": ratio, "mf_cost_total_s": mf["history"][-1]["cost_s"],
                     "full_wall_s": full["wall_s"], "mf_wall_s": mf["wall_s"]})
        rows.append([seed, f"{target:.4f}", f"{full_cost:.0f}", f"{mf['final_hv']:.4f}",
                     f"{reach:.0f}" if reach is not None else "not reached",
                     f"{ratio:.2f}" if ratio is not None else "-"])
        print(rows[-1], flush=True)
    ratios = [r["ratio"] for r in runs if r["ratio"] is not None]
    data = {"what": "P4: training time for multi-fidelity to reach 98% of the full-fidelity search's final hypervolume",
            "budget": BUDGET, "sampler": a.sampler, "reference_point": {"accuracy": FLOOR, "params": "budget"}, "trials_full": a.trials, "trials_mf": a.mf_trials,
            "trial": {"train_examples": a.train, "eval_examples": a.eval, "epochs": 1, "max_length": 64},
            "rungs": list(Fidelity.geometric().fractions), "eta": 3, "runs": runs,
            "ratio_mean": statistics.fmean(ratios) if ratios else None, "reached": f"{len(ratios)}/{len(runs)}",
            "machine": machine_info()}

    def render(d):
        return (f"# P4: multi-fidelity vs full fidelity, SST-2, budget {BUDGET}, sampler {a.sampler}\n\n"
                f"Full trial: {a.train} training / {a.eval} dev examples, 1 epoch. Full-fidelity arm: {a.trials} trials; "
                f"multi-fidelity arm (rungs 1/3, 1; eta 3): {a.mf_trials} trials. Cost = summed training wall "
                f"time of finished trials (the search's own cost accounting).\n\n"
                + md_table(["seed", "full final HV", "full cost s", "MF final HV", "MF cost s to reach 98%", "ratio"], rows)
                + f"\nMean ratio over seeds that reached it: {d['ratio_mean']} ({d['reached']} reached).\n")
    write_results("p4_fidelity", data, render)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="which", required=True)
    s = sub.add_parser("samplers")
    s.add_argument("--trials", type=int, default=40)
    s.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    s.add_argument("--train", type=int, default=512)
    s.add_argument("--eval", type=int, default=300)
    s.add_argument("--samplers", nargs="+", default=["random", "tpe", "gp", "nsga2"])
    f = sub.add_parser("fidelity")
    f.add_argument("--trials", type=int, default=12)
    f.add_argument("--mf-trials", type=int, default=24)
    f.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    f.add_argument("--train", type=int, default=1500)
    f.add_argument("--eval", type=int, default=300)
    f.add_argument("--sampler", default="tpe")
    a = p.parse_args()
    samplers(a) if a.which == "samplers" else fidelity(a)
