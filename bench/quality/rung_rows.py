"""Does a low rung learn the task once it trains its share of the steps on every row?

Until this change a rung of fraction f trained f of the full run's steps on f of its rows. At today's
2,400-step full run a small task repeats its rows many times (MRPC 23 epochs, STS-B 15), so the 1/9 rung
was 23 epochs on a ninth of MRPC (367 rows): every rung score of the MRPC headline study fell below the
input-blind score. Now a rung trains f of the steps on all the rows. This takes configurations of a committed
headline study (bench/results/headline_<task>_state/study.journal) whose old rung-0 score is on record (seed 0)
and the built-ins (their full-run score on record), trains each at the lowest rung as the product now does
(seed 0, one thread, two at a time), and reports, old rung against new on the same configurations: how many
clear the input-blind score, the spread, and the rank correlation with the full run where a full-run score
exists. Resumable: each run is appended to results/rung_rows_runs.jsonl as it ends.

    python -m bench.quality.rung_rows --task mrpc --task stsb --per-task 10
"""

from __future__ import annotations

import argparse
import json
import statistics

from bench.common import GLUE_DIR, RESULTS, machine_info, md_table, run_jobs, write_results

RAW = RESULTS / "rung_rows_runs.jsonl"
NAME = "rung_rows"

# One run in a 1-thread process: argv = task, trial number, data dir, raw file.
RUN = r"""
import json, sys, time
from bench.quality.rung_rows import load
from autolor2c.search.results import trial_plan
from autolor2c.search.run import plan_to_spec
from autolor2c.train import train
task, number, data_dir, raw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
study, settings, ctx = load(task, data_dir)
t = study.trials[number]
frac = ctx.fidelity.fractions[0]
args = settings.train_args(trial_plan(t).train, n_full=ctx.n_train_full, fraction=frac, seed=0)
r = train(ctx.task, plan_to_spec(trial_plan(t)), args, model_name=settings.model, data_dir=data_dir)
rec = {"task": task, "trial": number, "fraction": frac, "rows": r.n_train, "steps": r.steps,
       "selection": r.primary_score, "wall_s": r.wall_time_s, "cpu_s": r.cpu_time_s}
with open(raw, "a") as f:
    f.write(json.dumps(rec) + "\n")
print("RESULT " + json.dumps(rec), flush=True)
"""


def load(task: str, data_dir: str):
    """The committed headline study of ``task``, its settings and context (built under today's code)."""
    import optuna

    from autolor2c.search import record
    from autolor2c.search.run import SearchSettings, build_context, resolve_storage

    store = resolve_storage(f"journal:{RESULTS / f'headline_{task}_state' / 'study.journal'}", heartbeat=False)
    study = optuna.load_study(study_name=optuna.get_all_study_names(store)[0], storage=store)
    settings = SearchSettings.from_identity(study.user_attrs[record.IDENTITY], data_dir=data_dir, progress=False,
                                            out="/tmp/autolor2c-bench-rung-rows")
    return study, settings, build_context(settings, study.study_name)


def _old_record(task: str, per_task: int) -> dict:
    """What the study holds: the input-blind score, each configuration's old rung-0 score and full-run score
    (seed 0), and which configurations to train: every built-in, every one with a full-run score, then the
    lowest-numbered others with an old rung-0 score, ``per_task`` in all (at least the first two kinds)."""
    from autolor2c.search import record

    study, settings, ctx = load(task, GLUE_DIR)
    groups: dict[tuple, list] = {}  # a configuration: its parameters (promotions and retries repeat them)
    for t in study.trials:
        if t.user_attrs.get(record.TRAINED):
            groups.setdefault(tuple(sorted(t.params.items())), []).append(t)
    configs = {}
    for ts in groups.values():
        rungs = {int(r["rung"]): r for t in ts for r in record.rung_records(t)}
        if not rungs:
            continue
        configs[min(t.number for t in ts)] = {
            "builtin": next((t.user_attrs[record.BUILTIN] for t in ts if t.user_attrs.get(record.BUILTIN)), None),
            "params": next(iter(rungs.values()))["params"],
            "old_rung0": rungs[0]["score"] if 0 in rungs else None,
            "old_rows": rungs[0]["n_train"] if 0 in rungs else None,
            "old_wall_s": rungs[0]["wall_s"] if 0 in rungs else None,
            "full": rungs[ctx.fidelity.top]["score"] if ctx.fidelity.top in rungs else None}
    first = [n for n, c in configs.items() if c["builtin"] or c["full"] is not None]
    rest = [n for n, c in sorted(configs.items()) if n not in first and c["old_rung0"] is not None]
    chosen = sorted(first + rest[:max(0, per_task - len(first))])
    return {"trivial": ctx.trivial, "metric": ctx.task.primary_metric, "full_steps": ctx.full_steps,
            "n_full_rows": ctx.n_train_full, "fractions": list(ctx.fidelity.fractions),
            "configs": {str(n): configs[n] for n in chosen}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", action="append", default=None, help="repeatable (default: mrpc and stsb)")
    ap.add_argument("--per-task", type=int, default=10)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--render", action="store_true")
    a = ap.parse_args()
    tasks = a.task or ["mrpc", "stsb"]
    path = RESULTS / f"{NAME}.json"
    data = json.loads(path.read_text()) if path.is_file() else {"machine": machine_info(), "tasks": {}}
    if not a.render:
        for task in tasks:
            data["tasks"].setdefault(task, _old_record(task, a.per_task))
        path.write_text(json.dumps(data, indent=2))
        done = {(r["task"], r["trial"]) for r in _runs()}
        jobs = [[task, int(n)] for task in tasks for n in data["tasks"][task]["configs"] if (task, int(n)) not in done]
        run_jobs(RUN, [[*j, GLUE_DIR, RAW] for j in jobs], a.workers,
                 lambda j, r: f"{j[0]} trial {j[1]}: {r['steps']} steps on {r['rows']} rows, selection "
                              f"{r['selection']:.4f}, {r['wall_s']:.0f} s")
    data["runs"] = _runs()
    write_results(NAME, data, render, measured=not a.render)


def _runs() -> list[dict]:
    return [json.loads(ln) for ln in RAW.read_text().splitlines() if ln.strip()] if RAW.is_file() else []


def _spearman(x: list[float], y: list[float]) -> str:
    from scipy.stats import spearmanr

    return f"{spearmanr(x, y).statistic:.2f}" if len(x) >= 3 else "n/a"


def render(d: dict) -> str:
    out = ["# Does the lowest rung learn once it trains on every row? (`bench/quality/rung_rows.py`)\n",
           f"Machine: {d['machine'].get('cpu')}. Configurations of each committed headline study, seed 0, one thread, "
           "two runs at a time. Old rung: the share of the steps on the same share of the rows (the study's own "
           "record); new rung: the share of the steps on every row (today's code). Built-ins start at the top "
           "rung, so they have no old rung score.\n"]
    summary = []
    for task, t in d["tasks"].items():
        new = {str(r["trial"]): r for r in d.get("runs", []) if r["task"] == task}
        cfg = t["configs"]
        both = [n for n in cfg if cfg[n]["old_rung0"] is not None and n in new]
        old_s = [cfg[n]["old_rung0"] for n in both]
        new_s = [new[n]["selection"] for n in both]
        all_new = [new[n]["selection"] for n in cfg if n in new]
        triv = t["trivial"]
        full = [n for n in cfg if cfg[n]["full"] is not None and n in new]
        full_old = [n for n in full if cfg[n]["old_rung0"] is not None]
        rows_old = next((cfg[n]["old_rows"] for n in both), None)
        rows_new = next((r["rows"] for r in new.values()), None)
        if both:
            summary.append([task, f"{t['full_steps']} on {t['n_full_rows']:,}", f"{triv:.4f}", len(both),
                            f"{rows_old}", f"{sum(s > triv for s in old_s)} of {len(old_s)}",
                            f"{statistics.mean(old_s):.4f} ({min(old_s):.3f}-{max(old_s):.3f})",
                            f"{rows_new}", f"{sum(s > triv for s in new_s)} of {len(new_s)}",
                            f"{statistics.mean(new_s):.4f} ({min(new_s):.3f}-{max(new_s):.3f})",
                            _spearman(old_s, new_s),
                            f"{statistics.mean(cfg[n]['old_wall_s'] for n in both):.0f} / "
                            f"{statistics.mean(new[n]['wall_s'] for n in both):.0f} s",
                            f"{_spearman([new[n]['selection'] for n in full], [cfg[n]['full'] for n in full])} (n = {len(full)})",
                            f"{_spearman([cfg[n]['old_rung0'] for n in full_old], [cfg[n]['full'] for n in full_old])} (n = {len(full_old)})"])
        rows = [[n, cfg[n]["builtin"] or "", f"{cfg[n]['old_rung0']:.4f}" if cfg[n]["old_rung0"] is not None else "",
                 f"{new[n]['selection']:.4f}" if n in new else "", f"{cfg[n]['full']:.4f}" if cfg[n]["full"] is not None else ""]
                for n in sorted(cfg, key=int)]
        out.append(f"## {task} (selection {t['metric']}, input-blind {triv:.4f}; new rung over all "
                   f"{len(all_new)} configurations: {sum(s > triv for s in all_new)} clear it)\n\n"
                   + md_table(["trial", "built-in", "old rung 0", "new rung 0", "full run"], rows))
    out.insert(2, md_table(["task", "full run (steps on rows)", "input-blind", "configurations", "old rows",
                            "old: above input-blind", "old mean (range)", "new rows", "new: above input-blind",
                            "new mean (range)", "Spearman old vs new", "wall a run old / new",
                            "new vs full run", "old vs full run"], summary))
    return "\n".join(out)


if __name__ == "__main__":
    main()
