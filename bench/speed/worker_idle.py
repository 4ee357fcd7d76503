"""Where the workers' time went in a real search: training, waiting for the ordered decision, lost to a kill.

``--workers 2`` keeps a study reproducible by making trial n wait until the trials below its cutoff have
finished (``autolor2c/search/run/ordered.py``). That waiting is the wall-time price of reproducibility, and
the README said it was not measured. This reads the committed headline journals (no training, seconds): for
each worker process, the time from its first trial's start to its last trial's end, split into
- training: the trials' own ``cost_s`` (the run, its evaluations and its save);
- waiting: the rest of a finished trial's time (the sampler's wait for the cutoff, plus loading, a few
  seconds a trial);
- lost: trials a killed session left running (started, never finished; to their last heartbeat);
- still running: trials running as it reads (a study read while it runs);
- between trials: what is left (the worker's own bookkeeping).
A worker process that ends while the other still trains leaves its core to the baselines' seeds (not
counted here: those are the headline's own phase), so the tail is shown apart.

    python -m bench.speed.worker_idle                     # the committed headline journals
    python -m bench.speed.worker_idle --journal path/to/study.journal --label mine
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from bench.common import RESULTS, machine_info, md_table, write_results

DEFAULT = {
    "stsb": "headline_stsb_state/study.journal",
    "mrpc": "headline_mrpc_state/study.journal",
    "mrpc_old_rungs": "headline_mrpc_old_rungs_state/study.journal",
}


def trial_rows(journal: str) -> list[dict]:
    """One row per trial: worker, start, end, training seconds and what it was."""
    import optuna

    from autolor2c.search import record
    from autolor2c.search.run import resolve_storage
    from autolor2c.search.run.optuna_internals import last_beat, worker_of
    from autolor2c.search.run.owner import is_gone

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=None, storage=resolve_storage(f"journal:{journal}", heartbeat=False))
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.datetime_start is None:
            continue
        start = t.datetime_start.timestamp()
        ua = t.user_attrs
        if t.state.is_finished() and t.state.name != "FAIL":
            end, kind = t.datetime_complete.timestamp(), (
                "surplus" if ua.get(record.SURPLUS) else "over budget" if ua.get(record.FEASIBLE) is False
                else "promotion" if record.promoted_from(t) is not None
                else "built-in" if ua.get(record.BUILTIN) else "new")
        elif t.state.name == "RUNNING" and not is_gone(worker_of(t), last_beat(t)):  # a study read while it runs
            end, kind = time.time(), "running"
        else:  # killed: it ran to its last heartbeat (a journal older than heartbeats: unknown)
            beat = last_beat(t)
            if beat is None:
                rows.append({"number": t.number, "worker": worker_of(t) or "?", "kind": "interrupted, time unknown",
                             "start": start, "end": None, "cost_s": 0.0, "rung": record.start_rung(t)})
                continue
            end, kind = beat, "interrupted"  # failed on resume, or RUNNING in a search stopped for good
        rows.append({"number": t.number, "worker": worker_of(t) or "?", "kind": kind, "start": start, "end": end,
                     "cost_s": float(ua.get(record.COST_S, 0.0)) if kind not in ("interrupted", "running") else 0.0,
                     "rung": record.start_rung(t)})
    return rows


def split(rows: list[dict]) -> dict:
    """The workers' held time split as the module says, summed over worker processes."""
    by_worker = defaultdict(list)
    for r in rows:
        if r["end"] is not None:
            by_worker[r["worker"]].append(r)
    held = training = waiting = lost = running = 0.0
    waits = []
    for w, rs in by_worker.items():
        held += max(r["end"] for r in rs) - min(r["start"] for r in rs)
        for r in rs:
            d = r["end"] - r["start"]
            if r["kind"] == "running":
                running += d
            elif r["kind"] == "interrupted":
                lost += d
            else:
                training += r["cost_s"]
                waiting += max(0.0, d - r["cost_s"])
                if d - r["cost_s"] > 60:
                    waits.append({"trial": r["number"], "wait_s": round(d - r["cost_s"]), "kind": r["kind"]})
    # the tail: within a group of processes that ran together, a worker that ended before the last trial did
    tail = 0.0
    for group in _segments(by_worker):
        last = max(max(r["end"] for r in by_worker[w]) for w in group)
        tail += sum(last - max(r["end"] for r in by_worker[w]) for w in group)
    return {"workers": len([w for w in by_worker if w != "?"]), "held_s": held, "training_s": training, "waiting_s": waiting,
            "lost_s": lost, "running_s": running, "between_s": held - training - waiting - lost - running,
            "tail_s": tail,
            "lost_unknown": [r["number"] for r in rows if r["end"] is None],
            "long_waits": sorted(waits, key=lambda x: x["trial"])}


def _segments(by_worker: dict) -> list[list[str]]:
    """Worker processes grouped by overlapping lifetimes (one group per session of the search)."""
    spans = sorted((min(r["start"] for r in rs), max(r["end"] for r in rs), w) for w, rs in by_worker.items())
    groups, end = [], None
    for s, e, w in spans:
        if groups and s < end:
            groups[-1].append(w)
            end = max(end, e)
        else:
            groups.append([w])
            end = e
    return groups


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--journal", action="append", default=None, help="a study journal (repeatable); default: the "
                    "committed headline journals under bench/results/")
    ap.add_argument("--label", action="append", default=None, help="a name for each --journal")
    a = ap.parse_args()
    if a.journal:
        labels = a.label or [f"journal {i}" for i in range(len(a.journal))]
        if len(labels) != len(a.journal):
            ap.error("give one --label per --journal")
        journals = dict(zip(labels, a.journal))
    else:
        journals = {k: str(RESULTS / v) for k, v in DEFAULT.items() if (RESULTS / v).is_file()}
    data = {"machine": machine_info(), "studies": {}}
    for label, path in journals.items():
        rows = trial_rows(path)
        data["studies"][label] = {"journal": path, **split(rows), "trials": rows}
    write_results("worker_idle", data, render)


def render(d: dict) -> str:
    rows, unknown = [], []
    for label, s in d["studies"].items():
        if s["lost_unknown"]:
            n = s["lost_unknown"]
            unknown.append(f"{label}: trial{'s' if len(n) > 1 else ''} {', '.join(map(str, n))}")
        h = s["held_s"] or 1.0
        rows.append([label, s["workers"], f"{h / 3600:.2f}", *(f"{s[k] / h:.0%}" for k in
                     ("training_s", "waiting_s", "lost_s", "running_s", "between_s")), f"{s['tail_s'] / 60:.0f}",
                     ", ".join(f"{w['trial']} ({w['kind']}) {w['wait_s'] / 60:.0f} min" for w in s["long_waits"])
                     or "none"])
    return ("# Where the workers' time went (committed headline journals, `bench/speed/worker_idle.py`)\n\n"
            f"Read at {d['machine'].get('finished', '?')}; a study that still ran then shows its running trials.\n\n"
            "Each worker process's time from its first trial's start to its last trial's end (summed over the "
            "processes), split into training (the trials' `cost_s`), waiting (the rest of a finished trial: the "
            "ordered sampler's wait for its cutoff, plus a few seconds of loading), lost (trials a killed session "
            "left running, to their last heartbeat), still running (a study read while it runs) and between trials. The tail is core-minutes a worker ended "
            "before the last trial of its session (since `d7c29bc` the baselines' seeds start "
            "there). No training: it reads the journals.\n\n"
            + md_table(["study", "worker processes", "core-hours held", "training", "waiting", "lost",
                        "still running", "between trials", "tail (core-min)", "waits over a minute"], rows) + "\n"
            + (f"\nInterrupted with no heartbeat (a trial beats only once it has decided what to run: killed while "
               f"still deciding, or before heartbeats were recorded), so their time is unknown and not counted: "
               f"{'; '.join(unknown)}.\n" if unknown else ""))


if __name__ == "__main__":
    main()
