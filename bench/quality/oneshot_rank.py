"""Does the one-shot rung rank configurations like training them? Measured before it is adopted.

For each task, the super-adapter the product trains for ``autolor2c search --task T --budget 0.1M --oneshot``
(``search/fidelity/oneshot.py``: the default space's prior within the budget, the default run length, cached in
bench/out/oneshot-cache) scores the configurations of the committed headline study
(``results/oneshot_rank_studies/<task>_trials.csv``, copies of ``headline_<task>_trials.csv`` as they stood when this
was measured, since a headline re-run replaces them: their plans and their rung scores, trained at the time with seed 0).
Reported: the Spearman and Kendall correlation of the one-shot scores with the full-run selection scores, with
a 90% bootstrap interval over configurations; the same for the study's lowest real rung where it has one
(SST-2) and for the 1/9 and 1/3 rungs that ``rung_rank.py`` retrained (STS-B); and the cost of each per
configuration. A diagnostic column scores each configuration's *recorded* final structure (the merges and
injections its own training made), to tell a ranking error of the shared weights from one of the spectra
that pick merges and injections.

The headline studies ran at the old default (trainer 4, 300 steps on MRPC and STS-B): the full-run scores are
those runs'; the super-adapter trains at today's default length. One process per task, each result kept as
it ends (resumable):

    python -m bench.quality.oneshot_rank                 # every task not yet measured
    python -m bench.quality.oneshot_rank --render
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import random
import subprocess
import sys
from pathlib import Path

from bench.common import GLUE_DIR, RESULTS, machine_info, md_table, write_results

TASKS = ("stsb", "mrpc", "sst2")
OUT = Path(__file__).resolve().parents[1] / "out"
RAW = RESULTS / "oneshot_rank_runs.jsonl"
STUDIES = RESULTS / "oneshot_rank_studies"  # the studies it was measured on (the headlines of the time)


def configurations(task: str) -> list[dict]:
    """The headline study's configurations (one per distinct parameter set): plan, rung scores, recorded final
    structure."""
    rows = list(csv.DictReader(open(STUDIES / f"{task}_trials.csv")))
    metric = next(k for k in rows[0] if k.startswith("values_") and k != "values_trainable_params")
    out: dict[str, dict] = {}
    for r in rows:
        if not r["user_attrs_rungs"] or not r["user_attrs_plan"]:
            continue  # over budget: never trained
        params = {k: r[k] for k in rows[0] if k.startswith("params_")}
        key = json.dumps(params, sort_keys=True)
        c = out.setdefault(key, {"trials": [], "rungs": {}, "plan": ast.literal_eval(r["user_attrs_plan"]),
                                 "builtin": r.get("user_attrs_builtin") or None})
        c["trials"].append(int(r["number"]))
        for g in ast.literal_eval(r["user_attrs_rungs"]):
            c["rungs"][round(float(g["fraction"]), 4)] = {"score": float(g["score"]), "steps": g["steps"],
                                                         "cpu_s": g.get("cpu_s"), "wall_s": g.get("wall_s"),
                                                         "params": g["params"]}
        if r["user_attrs_final_structure"] and float(max(c["rungs"])) >= 1.0:
            c["final_structure"] = ast.literal_eval(r["user_attrs_final_structure"])
        c["metric"] = metric[len("values_"):]
    return list(out.values())


# One task in a child process: a benchmark killed mid-task loses that task only.
CHILD = r"""
import json, sys, time
from autolor2c.lor2c import LoR2CConfig
from autolor2c.search import SearchSettings, build_context
from autolor2c.search.fidelity.oneshot import OneShotRung
from autolor2c.search.space import TrialPlan
from bench.quality.oneshot_rank import configurations, OUT
task, data_dir, raw = sys.argv[1:4]
s = SearchSettings(task=task, data_dir=data_dir, budget="0.1M", progress=False,
                   out=str(OUT / "oneshot-rank" / task / "study"))
ctx = build_context(s)
t0 = time.time()
rung = OneShotRung(ctx, cache_dir=OUT / "oneshot-cache", progress=False)
meta = {"supernet_wall_s": rung.run.wall_s, "supernet_cpu_s": rung.run.cpu_s, "supernet_steps": rung.run.steps,
        "cached": rung.cached, "prior_structures": len(rung.prior.structures), "max_span": rung.prior.max_span,
        "max_rank": rung.prior.max_rank, "max_lora_rank": rung.prior.max_lora_rank}
rows = []
for c in configurations(task):
    plan = TrialPlan.from_dict(c["plan"])
    r = rung.score(plan.adapter)
    row = {"trials": c["trials"], "builtin": c["builtin"], "rungs": c["rungs"], "oneshot": r["score"],
           "oneshot_structure": r["final_structure"], "oneshot_cpu_s": r["cpu_s"], "oneshot_wall_s": r["wall_s"]}
    fs = c.get("final_structure")
    if fs:
        cfg = LoR2CConfig(spans=fs["spans"], ranks=fs["ranks"], injected=fs["injected"], share_a=fs["share_a"],
                          rank=fs["ranks"][0] if fs["ranks"] else plan.adapter.rank,
                          inject_rank=plan.adapter.inject_rank, max_merge_span=plan.adapter.max_merge_span)
        row["oneshot_recorded_structure"] = rung.score(cfg)["score"]
    rows.append(row)
    print("config", row["trials"], round(row["oneshot"], 4), flush=True)
with open(raw, "a") as f:
    f.write(json.dumps({"task": task, "metric": ctx.task.primary_metric, **meta, "configs": rows}) + "\n")
"""


def kept() -> dict[str, dict]:
    if not RAW.is_file():
        return {}
    return {d["task"]: d for d in (json.loads(x) for x in RAW.read_text().splitlines() if x.strip())}


def _corr(xs: list[float], ys: list[float], seed: int = 0) -> dict:
    from scipy.stats import kendalltau, spearmanr

    n = len(xs)
    if n < 4:
        return {"n": n, "spearman": None, "kendall": None, "spearman_ci90": None}
    rho = float(spearmanr(xs, ys).statistic)
    tau = float(kendalltau(xs, ys).statistic)
    rng = random.Random(seed)
    boots = []
    for _ in range(2000):  # configurations resampled with replacement
        idx = [rng.randrange(n) for _ in range(n)]
        bx, by = [xs[i] for i in idx], [ys[i] for i in idx]
        if len(set(bx)) > 1 and len(set(by)) > 1:
            boots.append(float(spearmanr(bx, by).statistic))
    boots.sort()
    ci = [round(boots[int(0.05 * len(boots))], 3), round(boots[int(0.95 * len(boots)) - 1], 3)] if boots else None
    return {"n": n, "spearman": round(rho, 3), "kendall": round(tau, 3), "spearman_ci90": ci}


def summarise(raw: dict[str, dict]) -> dict:
    out = {"protocol": "the product's super-adapter (default space, budget 0.1M, default run length) scores the "
                       "committed headline study's configurations; correlations against their recorded rung "
                       "scores (seed 0, trainer 4); 90% bootstrap interval over configurations", "tasks": {}}
    for task, d in raw.items():
        cs = d["configs"]
        full = [c for c in cs if "1.0" in c["rungs"] or 1.0 in c["rungs"]]
        fr = lambda c, f: c["rungs"].get(str(f), c["rungs"].get(f))  # noqa: E731 (json keys are strings)
        entry = {"metric": d["metric"], "n_configurations": len(cs), "supernet_s": d["supernet_wall_s"],
                 "supernet_cpu_s": d["supernet_cpu_s"], "supernet_steps": d["supernet_steps"],
                 "oneshot_s_per_config": round(sum(c["oneshot_wall_s"] for c in cs) / len(cs), 2),
                 "oneshot_cpu_s_per_config": round(sum(c["oneshot_cpu_s"] for c in cs) / len(cs), 2),
                 "super_adapter": {k: d[k] for k in ("prior_structures", "max_span", "max_rank", "max_lora_rank")}}
        full_scores = [fr(c, 1.0)["score"] for c in full]
        entry.update(_corr([c["oneshot"] for c in full], full_scores))
        rec = [c for c in full if "oneshot_recorded_structure" in c]
        entry["recorded_structure"] = _corr([c["oneshot_recorded_structure"] for c in rec],
                                            [fr(c, 1.0)["score"] for c in rec])
        # the study's own lowest real rung, where its configurations have one
        lows = sorted({float(f) for c in cs for f in c["rungs"] if float(f) < 1.0})
        if lows:
            low = lows[0]
            both = [c for c in cs if fr(c, low) is not None and fr(c, 1.0) is not None]
            at_low = [c for c in cs if fr(c, low) is not None]
            entry["lowest_rung"] = {"fraction": low, "steps": fr(at_low[0], low)["steps"],
                                    "vs_full": _corr([fr(c, low)["score"] for c in both],
                                                     [fr(c, 1.0)["score"] for c in both]),
                                    "oneshot_vs_lowest_rung": _corr([c["oneshot"] for c in at_low],
                                                                    [fr(c, low)["score"] for c in at_low]),
                                    "s_per_config": round(sum(fr(c, low)["wall_s"] for c in at_low) / len(at_low), 1),
                                    "cpu_s_per_config": round(sum(fr(c, low)["cpu_s"] or 0 for c in at_low)
                                                              / len(at_low), 1)}
            entry["lowest_rung_spearman"] = entry["lowest_rung"]["vs_full"]["spearman"]
            entry["lowest_rung_s_per_config"] = entry["lowest_rung"]["s_per_config"]
        rr = RESULTS / f"rung_rank_{task}.json"
        if rr.is_file():  # low rungs retrained on the same configurations (rung_rank.py)
            from scipy.stats import spearmanr

            r = json.loads(rr.read_text())
            rungs = {}
            for f in sorted({x["fraction"] for x in r["runs"]}):
                runs = [x for x in r["runs"] if x["fraction"] == f]
                fulls = [r["full"][str(x["trial"])]["seed0"] for x in runs]
                rungs[f"{f:.3f}"] = {"steps": runs[0]["steps"], "n": len(runs),
                                     "spearman": round(float(spearmanr([x["selection"] for x in runs], fulls).statistic), 3),
                                     "s_per_config": round(sum(x["wall_s"] for x in runs) / len(runs), 1)}
            entry["retrained_rungs"] = rungs
            lowest = rungs[min(rungs)]
            entry.setdefault("lowest_rung_spearman", lowest["spearman"])
            entry.setdefault("lowest_rung_s_per_config", lowest["s_per_config"])
        out["tasks"][task] = entry
    return out


def render(d: dict) -> str:
    rows = []
    for task, e in d["tasks"].items():
        ci = e.get("spearman_ci90")
        rows.append([task, e["n"], e["spearman"], f"{ci[0]} to {ci[1]}" if ci else "-", e["kendall"],
                     e["recorded_structure"]["spearman"], e.get("lowest_rung_spearman", "-"),
                     e["oneshot_s_per_config"], e.get("lowest_rung_s_per_config", "-"), e["supernet_s"],
                     e["supernet_steps"]])
    extra = []
    for task, e in d["tasks"].items():
        if "lowest_rung" in e:
            lr = e["lowest_rung"]
            extra.append(f"- {task}: the study's lowest rung ({lr['fraction']:.3f}, {lr['steps']} steps) against the "
                         f"full run: Spearman {lr['vs_full']['spearman']} (n={lr['vs_full']['n']}); one-shot against "
                         f"that rung: {lr['oneshot_vs_lowest_rung']['spearman']} (n={lr['oneshot_vs_lowest_rung']['n']}).")
        for f, r in e.get("retrained_rungs", {}).items():
            extra.append(f"- {task}: rung {f} ({r['steps']} steps) retrained by rung_rank.py: Spearman {r['spearman']} "
                         f"(n={r['n']}), {r['s_per_config']} s a configuration.")
    m = d.get("machine", {})
    return ("# One-shot rung: does the super-adapter rank configurations like training them?\n\n"
            f"Machine: {m.get('cpu')}. Script: `bench/quality/oneshot_rank.py`; raw scores per configuration in "
            "`oneshot_rank_runs.jsonl`. Protocol: " + d["protocol"] + ".\n\n"
            + md_table(["task", "n (full run)", "Spearman", "90% CI", "Kendall", "Spearman, recorded structure",
                        "lowest real rung Spearman", "one-shot s/config", "lowest rung s/config",
                        "super-adapter s", "super-adapter steps"], rows)
            + "\n" + "\n".join(extra) + "\n\nSeconds are wall seconds of one 1-thread process; other work shared "
              "the second core at times.\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--render", action="store_true")
    ap.add_argument("--tasks", default=",".join(TASKS))
    a = ap.parse_args()
    if not a.render:
        done = kept()
        for task in a.tasks.split(","):
            if task in done:
                continue
            env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
            import os

            subprocess.run([sys.executable, "-c", CHILD, task, GLUE_DIR, str(RAW)], env={**os.environ, **env},
                           check=False, cwd=str(Path(__file__).resolve().parents[2]))
    data = summarise(kept())
    data["machine"] = machine_info()
    write_results("oneshot_rank", data, render, measured=not a.render)


if __name__ == "__main__":
    main()
