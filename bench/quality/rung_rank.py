"""Would a low rung rank configurations like the full run?

Written when MRPC's and STS-B's full runs were 300 steps and multi-fidelity was off there, so every trial of
their headline studies trained the full run (the committed rung_rank_stsb.md comes from that study, since
replaced by the re-run at 2,400 steps, whose only full-run trials are the few the search promoted). This
takes the configurations that a finished headline search (bench/quality/headline.py; its study journal is
committed under results/headline_<task>_state/) trained at the full run, trains each one again at 1/9
and 1/3 of it (seed 0, a rung's own arguments: ``SearchSettings.train_args(fraction=...)``), and reports the
Spearman correlation of each rung's selection score with the full run's, and whether the full run's best
configurations would have been promoted (top 1/eta of each rung). Resumable: each run is kept as it ends.

    python -m bench.quality.rung_rank --task stsb
"""

from __future__ import annotations

import argparse
import json

from bench.common import GLUE_DIR, RESULTS, machine_info, md_table, write_results

FRACTIONS = (1 / 9, 1 / 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="stsb")
    ap.add_argument("--render", action="store_true", help="the summary again from the kept runs")
    ap.add_argument("--storage", default=None, help="the study's storage URL (default: the committed headline "
                    "study, journal:bench/results/headline_<task>_state/study.journal)")
    a = ap.parse_args()
    name = f"rung_rank_{a.task}"
    path = RESULTS / f"{name}.json"
    data = json.loads(path.read_text()) if path.is_file() else {"task": a.task, "runs": [], "machine": machine_info()}
    if a.render:
        write_results(name, data, render, measured=False)
        return

    import optuna

    from autolor2c.search import record
    from autolor2c.search.results import trial_plan
    from autolor2c.search.run import SearchSettings, build_context, plan_to_spec, resolve_storage
    from autolor2c.train import train

    storage = resolve_storage(a.storage or f"journal:{RESULTS / f'headline_{a.task}_state' / 'study.journal'}",
                              heartbeat=False)
    study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
    settings = SearchSettings.from_identity(study.user_attrs[record.IDENTITY], data_dir=GLUE_DIR, progress=False,
                                            out="/tmp/autolor2c-bench-rung-rank")
    ctx = build_context(settings, study.study_name)
    metric = ctx.task.primary_metric
    if data.get("full_steps") not in (None, ctx.full_steps):  # same study name, another run length
        raise SystemExit(f"{path} holds runs against a {data['full_steps']}-step full run, this study's is "
                         f"{ctx.full_steps}: move it aside first (it is in git)")
    top = [t for t in study.get_trials(deepcopy=False) if record.is_feasible(t) and t.values is not None]
    # the full run is each trial itself (seed 0), as the retrained rungs are
    data.update({"study": study.study_name, "full_steps": ctx.full_steps, "metric": metric,
                 "full": {str(t.number): {"seed0": t.values[0], "params": int(t.values[1])} for t in top}})
    done = {(r["trial"], round(r["fraction"], 4)) for r in data["runs"]}
    for t in top:
        for frac in FRACTIONS:
            if (t.number, round(frac, 4)) in done:
                continue
            plan = trial_plan(t)
            args = settings.train_args(plan.train, n_full=ctx.n_train_full, fraction=frac, seed=0)
            r = train(ctx.task, plan_to_spec(plan), args, model_name=settings.model, data_dir=GLUE_DIR)
            data["runs"].append({"trial": t.number, "fraction": frac, "steps": r.steps, "selection": r.primary_score,
                                 "wall_s": r.wall_time_s})
            print(f"trial {t.number} at {frac:.3f}: {r.steps} steps, selection {r.primary_score:.4f}, "
                  f"{r.wall_time_s:.0f} s", flush=True)
            path.write_text(json.dumps(data, indent=2))
    write_results(name, data, render)


def _spearman(x: list[float], y: list[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def render(d: dict) -> str:
    full = d["full"]
    trials = sorted(full, key=lambda k: -full[k]["seed0"])
    rows, summary = [], []
    by = {(str(r["trial"]), round(r["fraction"], 4)): r for r in d["runs"]}
    for k in trials:
        cells = [f"trial {k}", f"{full[k]['params']:,}", f"{full[k]['seed0']:.4f}"]
        cells += [f"{by[(k, round(f, 4))]['selection']:.4f}" if (k, round(f, 4)) in by else "" for f in FRACTIONS]
        rows.append(cells)
    eta = 3
    for f in FRACTIONS:
        ks = [k for k in trials if (k, round(f, 4)) in by]
        if len(ks) < 3:
            continue
        low = [by[(k, round(f, 4))]["selection"] for k in ks]
        hi = [full[k]["seed0"] for k in ks]
        keep = max(1, len(ks) // eta)
        promoted = set(sorted(ks, key=lambda k: -by[(k, round(f, 4))]["selection"])[:keep])
        best3 = ks[:3]  # ks keeps the full run's order
        steps = by[(ks[0], round(f, 4))]["steps"]
        cost = sum(by[(k, round(f, 4))]["wall_s"] for k in ks) / len(ks)
        summary.append([f"{f:.3f} ({steps} steps)", len(ks), f"{_spearman(low, hi):.2f}",
                        f"{sum(1 for k in best3 if k in promoted)} of 3", f"{keep}", f"{cost:.0f} s"])
    return (f"# Does a low rung rank like the full run? ({d['task']}, the headline study's top-rung configurations)\n\n"
            f"Machine: {d['machine'].get('cpu')}. Script: `bench/quality/rung_rank.py --task {d['task']}`. Full run "
            f"{d['full_steps']} steps; each configuration retrained at each fraction with seed 0 (the full-run "
            f"score is its trial, seed 0: rung and full run share the seed, so the correlation includes what one seed "
            f"shares). Selection {d['metric']}.\n\n"
            + md_table(["rung", "configurations", "Spearman with the full run", "full run's best 3 promoted",
                        "promoted (top 1/3)", "mean cost"], summary)
            + "\n" + md_table(["configuration", "params", "full run", *[f"{f:.3f}" for f in FRACTIONS]], rows))


if __name__ == "__main__":
    main()
