"""Which pick ships the better model, on the headline searches (bench/quality/headline.py), with real seeds.

For each task whose headline search has finished, the product's ``pick_over_seeds`` runs on that study (it
trains only the seeds a candidate lacks), and three rules are read off it, each at 3 seeds:

- ``best``: the front's highest selection score;
- ``smallest-tied, once``: the fewest params within the seed noise of the best on its first seed (the rule
  before the recheck);
- ``smallest-tied`` as shipped: that tie rechecked over the candidate's own seeds, the next candidate tried
  when it does not hold.

Each one against the headline's baselines (3 seeds each), with the product's verdict rule.

    python -m bench.quality.pick_rule            # every task with a finished headline search
"""

from __future__ import annotations

import argparse
import json

from bench.common import GLUE_DIR, RESULTS, machine_info, md_table, write_results
from bench.quality.headline import OUT


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", nargs="*", default=["mrpc", "stsb", "sst2"])
    a = ap.parse_args()

    import optuna

    from autolor2c.search import record
    from autolor2c.search.front import pareto_front, pick_best, pick_smallest_tied, refuted_ties
    from autolor2c.search.results import best_baseline, pick_over_seeds, train_seeds, verdict
    from autolor2c.search.run import SearchSettings, build_context

    data = {"machine": machine_info(), "tasks": {}}
    for task in a.tasks:
        head = RESULTS / f"headline_{task}.json"
        db = OUT / f"headline-{task}" / "studies.db"
        if not head.is_file() or "baselines" not in json.loads(head.read_text()) or not db.is_file():
            print(f"{task}: no finished headline search, skipped")
            continue
        baselines = json.loads(head.read_text())["baselines"]
        storage = f"sqlite:///{db}"
        study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
        settings = SearchSettings.from_identity(study.user_attrs[record.IDENTITY], data_dir=GLUE_DIR,
                                                out=str(OUT / f"headline-{task}" / "study"), progress=False)
        ctx = build_context(settings, study.study_name)
        seeds = max(3, settings.seeds)
        chosen = pick_over_seeds(study, ctx, "smallest-tied", seeds)
        # the rule before the recheck: the smallest point tied on its first seed, whatever its other seeds say
        front = pareto_front(study)
        pts = [(t.values[0], t.values[1]) for t in front]
        first = front[pick_smallest_tied(pts, pick_best(pts), chosen.noise["mean"], chosen.noise["threshold"])]
        rules = {"best": chosen.best,
                 "smallest-tied, once": train_seeds(study, ctx, first, seeds, False, role="pick"),
                 "smallest-tied": chosen.pick}
        metric = ctx.task.primary_metric
        rows = {}
        for rule, s in rules.items():
            dom, sentence, _ = verdict(s, baselines, metric, ctx.trivial_dev)
            rows[rule] = {**{k: v for k, v in s.items() if k != "runs"}, "runs": s["runs"], "dominates": dom,
                          "verdict": sentence}
        data["tasks"][task] = {"metric": metric, "noise": chosen.noise, "refuted": sorted(refuted_ties(study)),
                               "best_baseline": (best_baseline(baselines) or {}).get("config"), "rules": rows,
                               "baselines": baselines}
    write_results("pick_rule", data, render)


def render(d: dict) -> str:
    out = ["# The pick rule on the headline searches (3 seeds each; baselines 3 seeds each)\n",
           f"Machine: {d['machine']['cpu']}. Script: `bench/quality/pick_rule.py`.\n"]
    for task, t in d["tasks"].items():
        top = next(b for b in t["baselines"] if b["config"] == t["best_baseline"])
        rows = [[rule, f"trial {r['trial']}", f"{r['selection_mean']:.4f} ± {r['selection_std']:.4f}",
                 f"{r['dev_mean']:.4f} ± {r['dev_std']:.4f}", f"{r['params']:,}",
                 "**dominates**" if r["dominates"] else "does not"] for rule, r in t["rules"].items()]
        rows.append([f"best baseline `{top['config']}`", top["source"],
                     f"{top['selection_mean']:.4f} ± {top['selection_std']:.4f}",
                     f"{top['dev_mean']:.4f} ± {top['dev_std']:.4f}", f"{top['params']:,}", ""])
        out += [f"## {task}\n", f"Tied with the best on their first seed, refuted over their own seeds: trials "
                               f"{t['refuted'] or 'none'}; seed noise {t['noise']}.\n",
                md_table(["rule", "trial", f"{t['metric']} (selection)", f"{t['metric']} (dev)", "params",
                          "verdict"], rows)]
    return "\n".join(out)


if __name__ == "__main__":
    main()
