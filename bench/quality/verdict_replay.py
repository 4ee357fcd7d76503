"""The product's verdict on the committed headline studies, replayed from their raw seed runs.

Each headline benchmark (bench/quality/headline.py) kept the pick's and every baseline's per-seed runs, 3
seeds each, in ``results/headline_<task>.json``. This applies the shipped verdict (``report.verdict``: higher, level
within the metric's practical margin, inconclusive with the seeds that would decide it, or no comparison
when training adds too little over the head alone) to them, beside the sentence the old rule ("level within
the measured noise") printed. Nothing is trained. The runs are the ones committed now (2,400 steps; SST-2 and
STS-B with the rungs of their time, MRPC with today's); "before" is the sentence the headline recorded when it
ran, so a difference between the two is a change of the rule since.

    python -m bench.quality.verdict_replay
"""

from __future__ import annotations

import json

from bench.common import RESULTS, machine_info, md_table, write_results

TASKS = {"sst2": "accuracy", "mrpc": "accuracy", "stsb": "pearson"}


def main() -> None:
    from autolor2c.search.results import best_baseline, verdict

    data = {"machine": machine_info(), "tasks": {}}
    for task, metric in TASKS.items():
        f = RESULTS / f"headline_{task}.json"
        if not f.is_file():
            continue
        d = json.loads(f.read_text())
        dominates, sentence, c = verdict(d["pick"], d["baselines"], metric)
        top = best_baseline(d["baselines"])
        data["tasks"][task] = {
            "metric": metric, "pick_trial": d["pick"]["trial"], "best_baseline": top["config"] if top else None,
            "pick_dev": [r["dev"] for r in d["pick"]["runs"]],
            "baseline_dev": [r["dev"] for r in top["runs"]] if top else None,
            "comparison": None if c is None else c.__dict__, "dominates": dominates, "sentence": sentence,
            "old_sentence": d.get("verdict")}
    write_results("verdict_replay", data, render)


def render(d: dict) -> str:
    rows = [[t, e["pick_trial"], e["best_baseline"], (e["comparison"] or {}).get("verdict"), e["dominates"]]
            for t, e in d["tasks"].items()]
    out = ["# The verdict by name, replayed on the committed headline studies (no training)", "",
           "Script: `bench/quality/verdict_replay.py`; inputs `headline_<task>.json` (per-seed dev runs of the "
           "pick and each baseline, 3 seeds each, as committed now); *before* is the sentence the headline "
           "recorded when it ran.", "",
           md_table(["task", "pick (trial)", "best baseline (selection)", "comparison", "dominates"], rows)]
    for t, e in d["tasks"].items():
        out += [f"**{t}**, now: {e['sentence']}", "", f"{t}, before: {e['old_sentence']}", ""]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
