"""Which front points are worth their seeds? The pick rule's screen, old against new, on the committed studies.

The pick rule (``--pick smallest-tied``) rechecks a candidate tied with the best on its first seed over its own
``--seeds`` seeds (each a top-rung run). The old screen sent every front point within 1.96 sd of the best
(``pareto.tie_threshold``); the new one only those whose first seed, were it the mean of their seeds, would
pass the recheck (``pareto.recheck_threshold``). Nothing is trained here:

1. **Replay**: on each committed headline study's front, at the seed noise it measured (SST-2 and STS-B at
   today's run length, ``headline_<task>.json``; MRPC at the old 300-step run, ``pick_rule.json``), the
   candidates each screen sends to their seeds and the top-rung seconds those seeds cost (2 runs each, at the
   candidate's own top-rung wall time).
2. **Simulation** at the same noise, on fronts whose true scores are that study's front scores (one seed of
   noise per point, the best at one run as with the baselines' noise, 3 seeds a candidate, 2,000 searches):
   seeds trained per search, how often a smaller configuration ships, how often a check holds, and the true
   score given up against always shipping the best.

    python -m bench.quality.tie_screen
"""

from __future__ import annotations

import csv
import json
import random
import statistics

from bench.common import RESULTS, machine_info, md_table, write_results

SEEDS = 3       # the default --seeds
SEARCHES = 2_000


def studies() -> dict[str, dict]:
    """Per task: the front (score, params, top-rung wall s), the best's runs and the noise (sd, df)."""
    from autolor2c.search.front import front_indices

    out = {}
    for task in ("sst2", "stsb"):
        d = json.loads((RESULTS / f"headline_{task}.json").read_text())
        done = [t for t in d["trials"] if t["state"] == "COMPLETE" and t["values"]]
        pts = [(t["values"][0], t["values"][1]) for t in done]
        front = [done[i] for i in front_indices(pts)]
        n = d["noise"]
        out[task] = {"source": f"headline_{task}.json (2,400-step run)", "noise_sd": n["std"], "noise_df": n["df"],
                     "best_runs": n["seeds"], "best_mean": n["mean"],
                     "front": [{"trial": t["number"], "score": t["values"][0], "params": int(t["values"][1]),
                                "builtin": t.get("builtin"),
                                "wall_s": ([r["wall_s"] for r in t.get("rungs") or [] if r["fraction"] >= 1] or [None])[-1]}
                               for t in front]}
    # MRPC at the old 300-step run: its study (oneshot_rank_studies/) and the noise its best's seeds measured
    pr = json.loads((RESULTS / "pick_rule.json").read_text())["tasks"].get("mrpc")
    rows = [r for r in csv.DictReader(open(RESULTS / "oneshot_rank_studies" / "mrpc_trials.csv")) if r["state"] == "COMPLETE"]
    if pr and rows:
        pts = [(float(r["values_accuracy"]), float(r["values_trainable_params"])) for r in rows]
        n = pr["noise"]
        out["mrpc"] = {"source": "pick_rule.json, oneshot_rank_studies/mrpc_trials.csv (300-step run)",
                       "noise_sd": n["std"], "noise_df": n.get("df", n["seeds"] - 1), "best_runs": n["seeds"],
                       "best_mean": n["mean"],
                       "front": [{"trial": int(rows[i]["number"]), "score": pts[i][0], "params": int(pts[i][1]),
                                  "builtin": rows[i]["user_attrs_builtin"] or None,
                                  "wall_s": float(rows[i]["user_attrs_cost_s"] or 0)} for i in front_indices(pts)]}
    return out


def replay(s: dict) -> dict:
    from autolor2c.search.front import recheck_threshold, tie_threshold

    best = max(s["front"], key=lambda p: p["score"])
    old = tie_threshold(s["noise_sd"], s["best_runs"])
    new = recheck_threshold(s["noise_sd"], s["noise_df"], s["best_runs"], SEEDS)

    def sent(thr):
        pts = [p for p in s["front"] if p is not best and p["score"] >= s["best_mean"] - thr]
        return {"trials": [p["trial"] for p in pts],
                "seed_s": sum((SEEDS - 1) * (p["wall_s"] or 0.0) for p in pts if not p["builtin"])}
    return {"old_threshold": old, "new_threshold": new, "old": sent(old), "new": sent(new)}


def simulate(s: dict, threshold: float, rng: random.Random) -> dict:
    from autolor2c.search.front import pick_best, pick_smallest_tied, tie_holds

    sd, true = s["noise_sd"], [p["score"] for p in s["front"]]
    params = [p["params"] for p in s["front"]]
    seeds = checks = held = smaller = 0
    loss = []
    for _ in range(SEARCHES):
        pts = [(t + rng.gauss(0, sd), p) for t, p in zip(true, params)]
        best, refuted = pick_best(pts), set()
        while (i := pick_smallest_tied(pts, best, pts[best][0], threshold, refuted)) != best:
            seeds, checks = seeds + SEEDS - 1, checks + 1
            runs = [pts[i][0]] + [true[i] + rng.gauss(0, sd) for _ in range(SEEDS - 1)]
            if tie_holds(runs, [pts[best][0]], 0.01, (sd, s["noise_df"])):
                held += 1
                break
            refuted.add(i)
        smaller += params[i] < params[best]
        loss.append(true[best] - true[i])
    return {"seeds_per_search": seeds / SEARCHES, "checks": checks, "held": held,
            "held_share": held / checks if checks else None, "smaller_share": smaller / SEARCHES,
            "true_loss_mean": statistics.fmean(loss), "true_loss_max": max(loss)}


def main() -> None:
    from autolor2c.search.front import recheck_threshold, tie_threshold

    data = {"machine": machine_info(), "seeds": SEEDS, "searches": SEARCHES, "tasks": {}}
    for task, s in studies().items():
        old = tie_threshold(s["noise_sd"], 1)
        new = recheck_threshold(s["noise_sd"], s["noise_df"], 1, SEEDS)
        data["tasks"][task] = {**s, "replay": replay(s),
                               "simulated": {"old": simulate(s, old, random.Random(0)),
                                             "new": simulate(s, new, random.Random(0))}}
    write_results("tie_screen", data, render)


def render(d: dict) -> str:
    rows, sims = [], []
    for task, e in d["tasks"].items():
        r = e["replay"]
        rows.append([task, e["source"], f"{e['noise_sd']:.4f}", f"{r['old_threshold']:.4f}", r["old"]["trials"],
                     f"{r['old']['seed_s']:.0f}", f"{r['new_threshold']:.4f}", r["new"]["trials"],
                     f"{r['new']['seed_s']:.0f}"])
        for rule in ("old", "new"):
            m = e["simulated"][rule]
            sims.append([task, rule, f"{m['seeds_per_search']:.2f}", m["checks"], m["held"],
                         "n/a" if m["held_share"] is None else f"{m['held_share']:.0%}", f"{m['smaller_share']:.1%}",
                         f"{m['true_loss_mean']:.4f}", f"{m['true_loss_max']:.4f}"])
    return ("# The pick rule's screen: which candidates train their seeds (old: within 1.96 sd; new: the bar their "
            "seeds must clear)\n\nScript: `bench/quality/tie_screen.py`; nothing trained. Replay on each committed "
            "front at its measured noise (seed cost: 2 top-rung runs a candidate, at its own top-rung wall time; a "
            "built-in's seeds are cached, cost 0):\n\n"
            + md_table(["task", "study", "noise sd", "old threshold", "old: sent", "old: seed run-s", "new threshold",
                        "new: sent", "new: seed run-s"], rows)
            + f"\nSimulated ({d['searches']} searches a row; the front's scores as the truth, one seed of noise a "
              f"point, the best at one run, {d['seeds']} seeds a candidate):\n\n"
            + md_table(["task", "screen", "seeds trained / search", "checks", "held", "held share",
                        "ships a smaller config", "true score given up (mean)", "(max)"], sims))


if __name__ == "__main__":
    main()
