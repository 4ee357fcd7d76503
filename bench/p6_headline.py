"""P6: the headline command with all defaults, beside one hand-set run, on this machine.

    python bench/p6_headline.py --task sst2                 # the headline command: search --task sst2 --budget 0.1M
    python bench/p6_headline.py --task mrpc -- --trials 8   # anything after -- goes to `autolor2c search`

Three timed phases, each recorded in bench/results/p6_<task>.json as soon as it ends, so a killed run
resumes where it stopped (the work folder bench/out/p6/<task> keeps the study and the baseline cache):
1. `autolor2c train --task T --config imlor2c` (the hand-set run a README reader would do): its wall time is
   the unit of the ratio, measured in the same run as the search.
2. The built-in hand-set configurations that fit the budget, retrained as a search retrains (one-off; a
   search reuses them from its cache): reported apart.
3. `autolor2c search --task T --budget 0.1M [args]` with everything else at its default: search + retrain
   wall time as a multiple of phase 1; the picked trial and when it was sampled; the infeasible share;
   the retrained pick (dev, 3 seeds) against the best hand-set built-in that fits the budget.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import GLUE_DIR, RESULTS, machine_info, run_logged  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "autolor2c")  # the venv's entry point, whether or not it is activated


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--budget", default="0.1M")
    ap.add_argument("--handset", default="imlor2c")
    ap.add_argument("--summarise", action="store_true",
                    help="record what an interrupted search phase measured so far (its study and finished retrain runs)")
    ap.add_argument("extra", nargs="*", help="extra `autolor2c search` arguments (after --)")
    a = ap.parse_args()
    work = ROOT / "bench" / "out" / "p6" / a.task
    work.mkdir(parents=True, exist_ok=True)
    out_json = RESULTS / f"p6_{a.task}.json"
    log = RESULTS / f"p6_{a.task}.log"
    data = json.loads(out_json.read_text()) if out_json.is_file() else {}
    data.update(task=a.task, budget=a.budget, search_args=a.extra, machine=machine_info())

    def save() -> None:
        out_json.write_text(json.dumps(data, indent=2, default=str))
        (RESULTS / f"p6_{a.task}.md").write_text(render(data))

    if "handset" not in data:
        cmd = [CLI, "train", "--task", a.task, "--config", a.handset, "--out", str(work / "handset")]
        rc, wall = run_logged(cmd, work, log)
        m = json.loads((work / "handset" / "metrics.json").read_text())
        data["handset"] = {"command": " ".join(cmd), "rc": rc, "wall_s": round(wall, 1), "dev": m["primary_score"],
                           "params": m["trainable_params"], "steps": m["steps"], "host": _host()}
        save()

    if "baselines" not in data:
        from autolor2c.search.retrain import retrain_baselines
        from autolor2c.search.study import SearchSettings, build_context

        t0 = time.time()
        ctx = build_context(SearchSettings(task=a.task, budget=a.budget, data_dir=GLUE_DIR, progress=False))
        base = retrain_baselines(ctx, work / "studies" / "baselines", seeds=1, progress=False)
        data["baselines"] = {"wall_s": round(time.time() - t0, 1),
                             "configs": [{k: v for k, v in b.items() if k != "runs"} for b in base]}
        save()

    if a.summarise:
        data["search_partial"] = summarise(work, a.task, partial=True)
        save()
    elif "search" not in data:
        cmd = [CLI, "search", "--task", a.task, "--budget", a.budget, "--no-progress", *a.extra]
        rc, wall = run_logged(cmd, work, log)
        data["search"] = {"command": " ".join(cmd), "rc": rc, "wall_s": round(wall, 1), "host": _host(),
                          **summarise(work, a.task)}
        save()
    print(render(data))


def _host() -> dict:
    """What a wall time depends on: the ratio of two phases means something only when these match."""
    m = machine_info()
    return {"cpu": m["cpu"], "cores_visible": m["cores_visible"], "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


def _partial_retrain(out: Path) -> dict:
    """The retrain runs that finished before the search command was stopped (one metrics.json each)."""
    runs = []
    for m in sorted((out / "retrain").glob("trial*-seed*/metrics.json")):
        r = json.loads(m.read_text())
        trial, seed = m.parent.name[len("trial"):].split("-seed")
        runs.append({"trial": int(trial), "seed": int(seed), "dev": r["dev_score"], "selection": r["primary_score"],
                     "params": r["trainable_params"], "wall_s": r["wall_time_s"]})
    return {"runs": runs}


def summarise(work: Path, task: str, partial: bool = False) -> dict:
    import optuna

    from autolor2c.search.sampler import configuration_chains
    from autolor2c.search.study import trained_configurations

    storage = f"sqlite:///{work}/studies/autolor2c.db"
    name = [n for n in optuna.get_all_study_names(storage) if n.startswith(task)][0]
    study = optuna.load_study(study_name=name, storage=storage)
    trials = study.trials
    out = work / "studies" / name
    if partial:
        from autolor2c.search.study import pick_trial

        retrain = _partial_retrain(out)
        pick = {"trial": pick_trial(study, "best").number}  # what the search command picked (--pick best)
    else:
        retrain = json.loads((out / "retrain.json").read_text())
        pick = retrain["pick"]
    chains = configuration_chains([t for t in trials if t.state.name in ("COMPLETE", "PRUNED")])
    roots = sorted(n for n, c in chains.items() if c[0].user_attrs.get("trained"))
    by_number = {t.number: t for t in trials}
    root = pick["trial"]
    while root is not None and "promoted_from" in by_number[root].user_attrs:
        root = int(by_number[root].user_attrs["promoted_from"])
    infeasible = sum(1 for t in trials if t.user_attrs.get("feasible") is False)
    return {"study": name, "optuna_trials": len(trials), "configurations": trained_configurations(study),
            "infeasible": infeasible, "infeasible_share": round(infeasible / max(1, infeasible + len(roots)), 3),
            "pick_trial": pick["trial"], "pick_sampled_as_configuration": roots.index(root) + 1 if root in roots else None,
            "pick_first_trial": root, "retrain": retrain, "baselines_in_study": study.user_attrs.get("baselines"),
            "trivial": study.user_attrs.get("trivial_score"), "cost": study.user_attrs.get("cost")}


def render(d: dict) -> str:
    lines = [f"# P6 ({d['task']}): the headline command with all defaults, beside a hand-set run", "",
             f"CPU at the last start of this script: {d['machine']['cpu']}, {d['machine']['cores_visible']} cores, "
             f"torch {d['machine']['torch']} (a resumed run's phases may have run on other machines).", ""]
    h = d.get("handset")
    if h:
        lines += [f"- hand-set `{h['command']}`: {h['wall_s'] / 60:.1f} min, dev {h['dev']:.4f}, {h['params']:,} params"]
    b = d.get("baselines")
    if b:
        lines += [f"- hand-set built-ins retrained as a search does (one-off, cached for later searches): "
                  f"{b['wall_s'] / 60:.1f} min"]
        for c in b["configs"]:
            lines += [f"  - `{c['config']}`: dev {c['dev_mean']:.4f}, selection {c['selection_mean']:.4f}, "
                      f"{c['params']:,} params ({c['seeds']} seed)"]
    sp = d.get("search_partial")
    if sp and not d.get("search"):
        lines += [f"- the search command was stopped during its retrain (session time): configurations trained "
                  f"{sp['configurations']}, Optuna trials {sp['optuna_trials']}, over budget (not trained) "
                  f"{sp['infeasible']} = {sp['infeasible_share']:.0%} of the sampled configurations; picked trial "
                  f"{sp['pick_trial']} (first sampled as trial {sp['pick_first_trial']}, configuration "
                  f"#{sp['pick_sampled_as_configuration']}); input-blind baseline {sp['trivial']}",
                  "- retrain runs that finished:"]
        for r in sp["retrain"]["runs"]:
            lines += [f"  - trial {r['trial']} seed {r['seed']}: dev {r['dev']:.4f}, selection {r['selection']:.4f}, "
                      f"{r['params']:,} params, {r['wall_s'] / 60:.1f} min"]
    s = d.get("search")
    if s:
        p = s["retrain"]["pick"]
        same_host = bool(h) and h.get("host") is not None and h.get("host") == s.get("host")
        timing = (f"= **{s['wall_s'] / h['wall_s']:.2f}x** the hand-set run (target <= 6x)" if same_host else
                  f"(no ratio: the hand-set run was timed on {(h or {}).get('host') or 'another session'}, the search "
                  f"on {s.get('host') or 'an unrecorded host'})")
        lines += [f"- `{s['command']}`: {s['wall_s'] / 60:.1f} min for search + retrain {timing}; exit {s['rc']}",
                  f"- configurations trained {s['configurations']}, Optuna trials {s['optuna_trials']}, over budget "
                  f"(not trained) {s['infeasible']} = {s['infeasible_share']:.0%} of the sampled configurations",
                  f"- picked trial {p['trial']} (first sampled as trial {s['pick_first_trial']}, configuration "
                  f"#{s['pick_sampled_as_configuration']}): retrained dev **{p['dev_mean']:.4f} ± {p['dev_std']:.4f}** over "
                  f"{p['seeds']} seeds ({', '.join(format(r['dev'], '.4f') for r in p['runs'])}), selection "
                  f"{p['selection_mean']:.4f}, {p['params']:,} params",
                  f"- input-blind baseline: {s['trivial']}"]
        for q in s["retrain"]["points"][1:]:
            lines += [f"- front point trial {q['trial']} ({q['role']}): dev {q['dev_mean']:.4f}, {q['params']:,} params (1 seed)"]
        if b and b["configs"]:
            top = max(b["configs"], key=lambda c: c["dev_mean"])
            dom = [q for q in s["retrain"]["points"] if q["dev_mean"] > top["dev_mean"] and q["params"] <= top["params"]]
            lines += [f"- best hand-set built-in: `{top['config']}` dev {top['dev_mean']:.4f} with {top['params']:,} params; "
                      f"the pick {'dominates it' if p['dev_mean'] > top['dev_mean'] and p['params'] <= top['params'] else 'does not dominate it'}; "
                      f"retrained front points that dominate it: {[q['trial'] for q in dom] or 'none'}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
