"""P6: the headline command with every default, beside one hand-set run, on one task, in one script.

1. `autolor2c train --task T --config imlor2c` (the hand-set run), timed.
2. `autolor2c search --task T --budget 0.1M` with every default (its own storage and artifacts under
   bench/out/headline-T/), timed. It trains every baseline's seeds itself (3 by default: the seed noise) and the
   pick's. Its one-offs, cached per task, model, data and training arguments, so that the next search on the
   set-up trains none of them, are told apart: the built-in trials, every baseline seed and the super-adapter.
3. The pick (3 seeds) against each baseline, with the product's verdict rule; wall time by stage (read off
   the search's timestamped output, log_stamped.txt) and CPU seconds by what they bought.

Resumable, from git alone: what the run has measured lives in bench/results/headline_T_state/ (tracked), so a
session that ends, or a fresh checkout, loses nothing committed: the study (an Optuna journal file, text), every
cached baseline seed (bench/out/headline-T/baselines links there; the built-in trials' kept runs there hold
weights and stay untracked, .gitignore) and the timestamped output. Commit the folder as
the run goes (bench/keep_committing.sh). The search resumes its study (a search killed with its session goes on in
the next; its time is the sum of its segments); finished seeds are not trained again. Trained weights stay in
bench/out (never committed): a resumed search does not need them.

    python -m bench.quality.headline --task mrpc
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench.common import GLUE_DIR, RESULTS, machine_info, md_table, run_logged, write_results

OUT = Path(__file__).resolve().parents[1] / "out"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", required=True)
    ap.add_argument("--trials", type=int, default=None, help="default: the shipped default")
    ap.add_argument("--baseline-seeds", type=int, default=3)
    ap.add_argument("--oneshot", action="store_true", help="the search with its one-shot rung (search --oneshot)")
    a = ap.parse_args()
    work = OUT / f"headline-{a.task}"
    work.mkdir(parents=True, exist_ok=True)
    name = f"headline_{a.task}"
    state = RESULTS / f"{name}_state"  # tracked: the run resumes from a fresh checkout
    (state / "baselines").mkdir(parents=True, exist_ok=True)
    cache = work / "baselines"  # where the search caches the baselines' seeds (beside its --out)
    if not cache.is_symlink():
        cache.symlink_to(state / "baselines", target_is_directory=True)
    stamped = state / "log_stamped.txt"
    res_path = RESULTS / f"{name}.json"
    data = json.loads(res_path.read_text()) if res_path.is_file() else {"task": a.task, "machine": machine_info()}
    log = work / "log.txt"
    exe = [sys.executable, "-m", "autolor2c.cli"]

    if "hand_set" not in data:
        rc, wall = run_logged([*exe, "train", "--task", a.task, "--config", "imlor2c", "--data-dir", GLUE_DIR,
                               "--out", str(work / "hand-set")], work, log)
        assert rc == 0, f"hand-set run failed (see {log})"
        m = json.loads((work / "hand-set" / "metrics.json").read_text())
        data["hand_set"] = {"wall_s": wall, "dev": m["dev_score"], "params": m["trainable_params"],
                            "steps": m["steps"], "cpu_s": m["cpu_time_s"], "host": machine_info()["cpu"]}
        res_path.write_text(json.dumps(data, indent=2, default=str))

    storage = f"journal:{state / 'study.journal'}"
    cmd = [*exe, "search", "--task", a.task, "--budget", "0.1M", "--data-dir", GLUE_DIR, "--storage", storage,
           "--out", str(work / "study"), "--no-progress"] + (["--trials", str(a.trials)] if a.trials else []) + (["--oneshot"] if a.oneshot else [])
    if "search" not in data:
        # A search killed with its session resumes in the next one: each run of it is a segment; a segment
        # that was killed ends, by estimate, at its last line of output (said in the result); work it lost is not counted.
        segments = data.setdefault("search_segments", [])
        for seg in segments:
            if seg.get("end") is None:
                seg["end"], seg["estimated"] = _last_output(storage, seg["start"], stamped), True
        if segments:  # a resume: the trials a killed segment left RUNNING died with it, on whatever host it ran
            _fail_running(storage)
        segments.append({"start": time.time(), "end": None})
        res_path.write_text(json.dumps(data, indent=2, default=str))
        rc, _ = run_logged(cmd, work, log, stamped=stamped)
        assert rc == 0, f"search failed (see {log})"
        segments[-1]["end"] = time.time()
        wall = sum(seg["end"] - seg["start"] for seg in segments)
        data["search"] = {"wall_s": wall, "command": " ".join(cmd[2:]), "host": machine_info()["cpu"],
                          "segments": len(segments), "estimated_segments": sum(1 for g in segments if g.get("estimated"))}
        res_path.write_text(json.dumps(data, indent=2, default=str))

    import optuna

    from autolor2c.search import record
    from autolor2c.search.results import (HEAD_ONLY, baselines_apart, best_baseline, builtin_baselines, train_baseline,
                                          train_seeds, verdict)
    from autolor2c.search.run import SearchSettings, build_context

    from autolor2c.search.run import resolve_storage

    store = resolve_storage(storage, heartbeat=False)
    study = optuna.load_study(study_name=optuna.get_all_study_names(store)[0], storage=store)
    settings = SearchSettings.from_identity(study.user_attrs[record.IDENTITY], data_dir=GLUE_DIR, out=str(work / "study"),
                                            progress=False)
    ctx = build_context(settings, study.study_name)
    trials = study.get_trials(deepcopy=False)
    t0 = time.time()
    baselines = builtin_baselines(study, ctx, a.baseline_seeds, False)
    baselines += [train_baseline(ctx, cache, n, spec, pt, a.baseline_seeds, False) for n, spec, pt in baselines_apart(ctx)]
    pick_attr = study.user_attrs[record.PICK]
    pick = train_seeds(study, ctx, study.trials[pick_attr["trial"]], max(3, pick_attr["seeds"]), False, role="pick")
    data["extra_seeds_wall_s"] = time.time() - t0
    head = next(b for b in baselines if b["config"] == HEAD_ONLY)
    metric = ctx.task.primary_metric
    # configurations: each one's highest rung score, against the head alone on the selection split
    chains = {root: max(r["score"] for t in chain for r in record.rung_records(t))
              for root, chain in record.configuration_chains(trials).items()
              if any(record.rung_records(t) for t in chain)}
    beat = sum(1 for v in chains.values() if v > head["selection_mean"] + 0.02)
    n_top = sum(1 for chain in record.configuration_chains(trials).values()
                if any(t.values is not None for t in chain))
    # how a rung ranks the next one, on the configurations the search itself promoted (a sample cut to the top
    # 1/eta of the lower rung, so the correlation is range-restricted: a floor on what the full ranking holds)
    agreement = _rung_agreement(record.configuration_chains(trials).values(), record.rung_records)
    # the super-adapter of the one-shot rung is a one-off too (cached per task, model, space, budget, data, args)
    oneshot = study.user_attrs.get(record.ONESHOT) or {}
    oneshot_cost, oneshot_cpu = float(oneshot.get("wall_s", 0.0)), float(oneshot.get("cpu_s", 0.0))
    # CPU seconds by what they bought (additive, exact): the one-offs are the built-in trials, every seed of
    # every baseline (cached per task, model, data and args) and the super-adapter; the search's own cost is
    # its other trials and the seeds of the candidates and the pick
    hand_cpu = data["hand_set"].get("cpu_s") or json.loads((work / "hand-set" / "metrics.json").read_text())["cpu_time_s"]
    builtin_numbers = {t.number for t in trials if record.builtin_of(t)}
    trials_cpu = sum(float(t.user_attrs.get(record.CPU_S, 0.0)) for t in trials)
    builtin_cpu = sum(float(t.user_attrs.get(record.CPU_S, 0.0)) for t in trials if t.number in builtin_numbers)
    seed_runs = study.user_attrs.get(record.SEED_RUNS, {})
    builtin_seeds_cpu = sum(float(r.get("cpu_s", 0.0)) for n, runs in seed_runs.items() if int(n) in builtin_numbers
                            for r in runs)
    own_seeds_cpu = sum(float(r.get("cpu_s", 0.0)) for n, runs in seed_runs.items() if int(n) not in builtin_numbers
                        for r in runs)
    apart_cpu = sum(float(r.get("cpu_s", 0.0)) for b in baselines if b["source"].startswith("trained apart")
                    for r in b.get("runs", []))
    oneoff_cpu = builtin_cpu + builtin_seeds_cpu + apart_cpu + oneshot_cpu
    own_cpu = trials_cpu - builtin_cpu + own_seeds_cpu
    # wall time by phase (trials, baselines' seeds, the pick's seeds); the trials phase is split between the
    # built-ins and the rest by their CPU seconds, as both workers run them side by side
    search_wall = data["search"]["wall_s"]
    phases = _phase_walls(stamped, search_wall, data["search_segments"],
                          [t.datetime_complete.timestamp() for t in trials if t.datetime_complete is not None])
    share = (trials_cpu - builtin_cpu) / trials_cpu if trials_cpu else 1.0
    own_wall = phases["trials"] * share + phases["seeds"]
    oneoff_wall = phases["trials"] * (1 - share) + phases["baselines"] + oneshot_cost
    dom, sentence, _ = verdict(pick, baselines, metric, ctx.trivial_dev)
    top = best_baseline(baselines)
    data.update({
        "study": study.study_name, "metric": metric, "pick": pick, "baselines": baselines,
        "noise": study.user_attrs.get("seed_noise"), "full_steps": ctx.full_steps,
        "rungs": list(ctx.fidelity.fractions), "n_configurations": len(chains), "n_scored": len(chains),
        "n_top_rung": n_top, "oneshot_wall_s": oneshot_cost, "rung_agreement": agreement,
        "beat_head_by_2pts": beat, "trial_wait_s": _trial_wait(trials),
        "ratio_total": search_wall / data["hand_set"]["wall_s"],
        "ratio_without_one_offs": own_wall / data["hand_set"]["wall_s"], "phase_wall_s": phases,
        "one_off_wall_s": oneoff_wall,
        "cpu_s": {"hand_set": hand_cpu, "trials": trials_cpu, "builtin_trials": builtin_cpu,
                  "builtin_seeds": builtin_seeds_cpu, "own_seeds": own_seeds_cpu, "apart_baselines": apart_cpu,
                  "oneshot_super_adapter": oneshot_cpu, "one_offs": oneoff_cpu, "own": own_cpu},
        "cpu_ratio_total": (oneoff_cpu + own_cpu) / hand_cpu,
        "cpu_ratio_without_one_offs": own_cpu / hand_cpu,
        "dominates": dom, "verdict": sentence, "best_baseline": top["config"] if top else None,
        "same_host": data["search"]["host"] == data["hand_set"]["host"],
        "trials": [{"number": t.number, "state": t.state.name, "values": t.values, "builtin": record.builtin_of(t),
                    "rungs": t.user_attrs.get("rungs"), "params": t.params, "dev": record.dev_score(t, metric),
                    "feasible": t.user_attrs.get("feasible")} for t in trials],
    })
    write_results(name, data, render)


def _trial_wait(trials) -> float:
    """Seconds the trials spent not training: a trial's time from start to end less its rung's run, summed. It
    is mostly a worker waiting for the fixed set of the ordered sampler (run/ordered.py), plus each trial's
    start-up and evaluation."""
    from autolor2c.search import record

    total = 0.0
    for t in trials:
        if t.datetime_start is None or t.datetime_complete is None:
            continue
        ran = sum(float(r.get("wall_s", 0.0)) for r in record.rung_records(t))
        total += max(0.0, (t.datetime_complete - t.datetime_start).total_seconds() - ran)
    return total


def _rung_agreement(chains, rung_records) -> list[dict]:
    """Spearman between each pair of consecutive rungs over the configurations scored at both."""
    from scipy.stats import spearmanr

    by_rung: dict[int, dict[int, float]] = {}
    for i, chain in enumerate(chains):
        for t in chain:
            for r in rung_records(t):
                by_rung.setdefault(int(r["rung"]), {})[i] = float(r["score"])
    out = []
    for lo in sorted(by_rung)[:-1]:
        both = sorted(set(by_rung[lo]) & set(by_rung[lo + 1]))
        rho = float(spearmanr([by_rung[lo][i] for i in both], [by_rung[lo + 1][i] for i in both])[0]) \
            if len(both) >= 3 else None
        out.append({"rungs": [lo, lo + 1], "n": len(both), "spearman": rho})
    return out


def _phase_walls(stamped: Path, search_wall: float, segments: list[dict], trial_ends: list[float]) -> dict[str, float]:
    """Wall seconds of the search's stages, summed over its segments (runs of the command, a killed one
    included). The trials end at the study's last trial end (``trial_ends``, from the study; where the front
    was printed if none ended), clipped to each segment: a segment killed before it is all trials, one begun
    after it starts in the baselines (its few seconds of start-up counted with them). The baselines end at the
    seed-noise line of the timestamped output (they may start before the trials end, on the cores the last
    trials leave free: that part is counted with the trials, as it adds no time), the pick's seeds at the
    pick's line; a segment killed inside a stage ends it. The trials are the rest of the search's wall time,
    start-up and report included."""
    stamps = [ln.split("\t", 1) for ln in stamped.read_text().splitlines() if "\t" in ln]
    stamps = [(float(t), ln) for t, ln in stamps]
    baselines = seeds = 0.0
    for seg in segments:
        lo, hi = seg["start"], seg["end"] if seg.get("end") is not None else time.time()

        def first(marker: str, after: float | None) -> float | None:
            return next((t for t, ln in stamps if after is not None and after <= t <= hi and marker in ln), None)

        front = first("Pareto front of", lo)
        noise = first("seed noise from", front) or first("measuring the seed noise", front)
        picked = first("picked trial", noise)
        # the trials stage ends once, at the study's last trial end: a segment begun after it (a resume into the
        # baselines) has none, one killed before it is all trials
        trials_end = min(hi, max(lo, max(trial_ends))) if trial_ends else front
        if trials_end is not None:
            baselines += max(0.0, (noise if noise is not None else hi) - trials_end)
        if noise is not None:
            seeds += (picked if picked is not None else hi) - noise
    return {"trials": search_wall - baselines - seeds, "baselines": baselines, "seeds": seeds}


def _last_output(storage: str, start: float, stamped: Path) -> float:
    """When a killed segment that began at ``start`` stopped: its last line of output or trial end."""
    last = _last_trial_end(storage, start)
    if stamped.is_file():
        for ln in stamped.read_text().splitlines():
            t = float(ln.split("\t", 1)[0]) if "\t" in ln else 0.0
            if t >= start:
                last = max(last, t)
    return last


def _fail_running(storage: str) -> None:
    """Fail and queue again every RUNNING trial: this script is the study's only driver, so none runs now. The
    search itself recovers only those of this host's dead processes, and a session may come back on another."""
    import optuna

    from autolor2c.search.run import fail_orphaned_trials, resolve_storage

    store = resolve_storage(storage, heartbeat=False)
    for name in optuna.get_all_study_names(store):
        failed = fail_orphaned_trials(optuna.load_study(study_name=name, storage=store), gone=lambda *_: True)
        if failed:
            print(f"trials left running by the killed segment, failed and queued again: {failed}")


def _last_trial_end(storage: str, start: float) -> float:
    """When the last trial that ended after ``start`` ended (``start`` if none did)."""
    import optuna

    from autolor2c.search.run import resolve_storage

    store = resolve_storage(storage, heartbeat=False)
    ends = [t.datetime_complete.timestamp() for name in optuna.get_all_study_names(store)
            for t in optuna.load_study(study_name=name, storage=store).trials
            if t.datetime_complete is not None and t.datetime_complete.timestamp() >= start]
    return max(ends, default=start)


def _pm(m, s):
    return f"{m:.4f}" if s is None else f"{m:.4f} ± {s:.4f}"


def render(d: dict) -> str:
    rows = [[f"**pick** trial {d['pick']['trial']}" + (f" (built-in {d['pick']['builtin']})" if d['pick'].get('builtin') else ""),
             _pm(d["pick"]["selection_mean"], d["pick"]["selection_std"]), _pm(d["pick"]["dev_mean"], d["pick"]["dev_std"]),
             f"{d['pick']['params']:,}", d["pick"]["seeds"]]]
    for b in d["baselines"]:
        rows.append([f"`{b['config']}` ({b['source']})", _pm(b["selection_mean"], b["selection_std"]),
                     _pm(b["dev_mean"], b["dev_std"]), f"{b['params']:,}", b["seeds"]])
    hs = d["hand_set"]
    return (f"# Headline search on {d['task']} (every default), beside one hand-set run\n\n"
            f"Machine: {d['machine'].get('cpu')}; `{d['search']['command']}`. Top rung {d['full_steps']} steps; "
            f"rungs {d['rungs']}.\n\n"
            + md_table(["what", f"{d['metric']} (selection)", f"{d['metric']} (dev)", "params", "seeds"], rows)
            + f"\nVerdict (product rule, best baseline `{d['best_baseline']}` chosen on the selection split): "
              f"**{'dominates' if d['dominates'] else 'does not dominate'}**. {d['verdict']}\n\n"
              f"Seed noise (best trial): {d['noise']}.\n\n"
              f"Configurations scored: {d.get('n_scored', d['n_configurations'])} (at any rung); trained to the top "
              f"rung: {d.get('n_top_rung', '?')} (built-ins included); beat the head alone by > 2 points: "
              f"{d['beat_head_by_2pts']} ({d['beat_head_by_2pts'] / max(1, d['n_configurations']):.0%}).\n\n"
              + (f"Trial time not spent training (waiting for the ordered sampler's fixed set, start-up, "
                 f"evaluation), summed over both workers: {d['trial_wait_s']:.0f} s.\n\n" if "trial_wait_s" in d else "")
              + ("How a rung ranks the next, on the configurations the search promoted (range-restricted: the top "
                 "1/eta of the lower rung): " + "; ".join(
                     f"rung {a['rungs'][0]} to {a['rungs'][1]}: Spearman "
                     + (f"{a['spearman']:.2f}" if a["spearman"] is not None else "n/a") + f" (n = {a['n']})"
                     for a in d["rung_agreement"]) + ".\n\n" if d.get("rung_agreement") else "")
              +
              f"Time: hand-set `train --config imlor2c` {hs['wall_s']:.0f} s (dev {hs['dev']:.4f}, {hs['params']:,} "
              f"params); search {d['search']['wall_s']:.0f} s{_segments(d)} = **{d['ratio_total']:.1f}x**; without its one-off costs "
              f"({_one_offs(d)}) **{d['ratio_without_one_offs']:.1f}x**. Same host: {d['same_host']}.\n"
            + (f"\nIn CPU seconds (every thread counted; waiting threads inflate them too when other jobs share "
               f"the cores): the search's trials, seeds and "
               f"baselines {_cpu_total(d):.0f} s = **{d['cpu_ratio_total']:.1f}x** the hand-set run's "
               f"{d['cpu_s']['hand_set']:.0f} s; without the one-offs (the built-in trials, every baseline seed, "
               f"the super-adapter) **{d['cpu_ratio_without_one_offs']:.1f}x**.\n" if "cpu_s" in d else ""))


def _one_offs(d: dict) -> str:
    ph = d["phase_wall_s"]
    return (f"{d['one_off_wall_s']:.0f} s: every baseline seed, {ph['baselines']:.0f} s after the trials, and the "
            f"built-in trials' share of the trials' {ph['trials']:.0f} s by CPU seconds; the pick's seeds "
            f"{ph['seeds']:.0f} s stay in")


def _segments(d: dict) -> str:
    n, est = d["search"].get("segments", 1), d["search"].get("estimated_segments", 0)
    return f" (in {n} runs, {est} of them killed and timed to their last line of output, work lost uncounted)" if n > 1 else ""


def _cpu_total(d: dict) -> float:
    c = d["cpu_s"]
    if "own" in c:
        return c["one_offs"] + c["own"]
    return c["trials"] + c["seeds"] + c["apart_baselines"]


if __name__ == "__main__":
    main()
