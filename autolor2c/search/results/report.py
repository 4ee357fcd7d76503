"""After a search: the artifacts (best config YAML, plotly charts, importances, report.md) and notes for
optuna-dashboard. Training lives elsewhere (retrain.py); this module only renders."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import optuna
import yaml

from autolor2c.train import lora_part

from .. import record
from ..front import (HEAD_GAIN_SDS, Comparison, compare, cost_totals, feasible_trials, hypervolume_history, pareto_front,
                     pooled_sd, practical_margin, refuted_ties, study_hypervolume, tied_with_the_best,
                     training_adds_enough)
from ..run import SearchContext, plan_to_spec
from ..space import format_params
from .artifacts import write_offline_html, write_tables_and_charts
from .retrain import HEAD_ONLY, trial_plan


def best_config_dict(t: optuna.trial.FrozenTrial, study_name: str) -> dict[str, Any]:
    """The config file that ``autolor2c train --config`` reads back: the configuration and the training
    arguments its top-rung trial trained with, so that command trains the trial's model again."""
    plan = trial_plan(t)
    spec = plan_to_spec(plan)
    recorded = record.train_args(t)
    train = {k: v for k, v in recorded.items() if k not in ("progress", "device")} if recorded else dict(plan.train)
    return {"method": spec.method, "adapter": spec.config.to_dict(), "train": train,
            "source": {"study": study_name, "trial": t.number,
                       "values": list(t.values), "final_structure": record.final_structure(t)}}


# --------------------------------------------------------------------------------------------------
def front_rows(study: optuna.Study) -> list[dict[str, Any]]:
    metric = (study.metric_names or ["score"])[0]
    rows = []
    for t in pareto_front(study):
        st = record.final_structure(t) or {}
        plan = record.plan(t)
        lr = plan.get("train", {}).get("learning_rate") or (record.train_args(t) or {}).get("learning_rate")
        rows.append({"trial": t.number, "score": t.values[0], "dev": record.dev_score(t, metric),
                     "params": int(t.values[1]), "structure": _structure_text(st), "lr": lr,
                     "builtin": record.builtin_of(t), "lora_part": lora_part(st) is not None, "cost_s": t.user_attrs.get(record.COST_S)})
    return rows


def _structure_text(st: dict[str, Any]) -> str:
    if not st:
        return ""
    if st.get("method") == "lora":
        return f"LoRA r={st.get('rank')} layers={st.get('layers')}"
    spans = " ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in st.get("spans", []))
    ranks = sorted(set(st.get("ranks", [])))
    inj = f" inject@{st['injected']}" if st.get("injected") else ""
    share = " sharedA" if st.get("share_a") else ""
    rank = (ranks[0] if len(ranks) == 1 else ranks) if ranks else "-"
    return f"spans[{spans}] r={rank}{share}{inj}"


def _note(r: dict[str, Any], tied: set[int], refuted: set[int]) -> str:
    parts = []
    if r["builtin"]:
        parts.append(f"built-in `{r['builtin']}`")
    if r["trial"] in tied:
        parts.append("tied")
    if r["trial"] in refuted:
        parts.append("not tied over its seeds")
    if r["lora_part"]:
        parts.append("LoRA part")
    return ", ".join(parts)


def front_markdown(study: optuna.Study, metric: str, tied: set[int] | None = None,
                   refuted: set[int] | None = None) -> str:
    tied, refuted = tied or set(), refuted or set()
    lines = [f"| trial | {metric} (selection) | {metric} (dev) | params | structure | lr | notes | cost (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in front_rows(study):
        lr = f"{r['lr']:.2e}" if isinstance(r["lr"], (int, float)) else ""
        dev = f"{r['dev']:.4f}" if isinstance(r["dev"], (int, float)) else ""
        lines.append(f"| {r['trial']} | {r['score']:.4f} | {dev} | {r['params']:,} | {r['structure']} | {lr} | "
                     f"{_note(r, tied, refuted)} | {r['cost_s']} |")
    return "\n".join(lines)


def _stage_lines(study: optuna.Study) -> list[str]:
    stages = study.user_attrs.get(record.STAGE_WALL)
    if not stages:
        return []
    parts = [f"trials {stages['trials']:.0f}s"]
    if "baselines" in stages:
        beside = (f", after {stages['baselines_beside_trials']:.0f}s on the cores the last trials left free"
                  if "baselines_beside_trials" in stages else "")
        parts.append(f"baselines' seeds {stages['baselines']:.0f}s{beside} (a one-off: cached, a later search on "
                     f"this task, model, data and training arguments trains none)")
    if "seeds" in stages:
        parts.append(f"the pick's seeds {stages['seeds']:.0f}s")
    return [f"- this session by stage: {'; '.join(parts)}"]


def print_front(study: optuna.Study, metric: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Pareto front of {study.study_name}")
    for col in ("trial", metric, "dev", "params", "structure", "lr", "notes", "cost (s)"):
        table.add_column(col)
    for r in front_rows(study):
        lr = f"{r['lr']:.2e}" if isinstance(r["lr"], (int, float)) else ""
        dev = f"{r['dev']:.4f}" if isinstance(r["dev"], (int, float)) else ""
        table.add_row(str(r["trial"]), f"{r['score']:.4f}", dev, f"{r['params']:,}", r["structure"], lr,
                      _note(r, set(), set()), str(r["cost_s"]))
    Console(width=160).print(table)


def pareto_figure(study: optuna.Study, budget: int, metric: str, pick: dict[str, Any] | None = None,
                  baselines: list[dict[str, Any]] | None = None, trivial: dict[str, float] | None = None):
    import plotly.graph_objects as go

    trials = [t for t in study.get_trials(deepcopy=False) if t.values is not None]
    feas = [t for t in trials if record.is_feasible(t)]
    front = {t.number for t in pareto_front(study)}
    fig = go.Figure()
    for name, group, color in (("trials (selection split)", [t for t in feas if t.number not in front], "#7aa6d6"),
                               ("trial front (selection split)", [t for t in feas if t.number in front], "#d62728")):
        if not group:
            continue
        fig.add_trace(go.Scatter(
            x=[t.values[1] for t in group], y=[t.values[0] for t in group],
            mode="markers", name=name, marker=dict(color=color, size=10 if "front" in name else 7),
            text=[f"trial {t.number}: {_structure_text(record.final_structure(t) or {})}" for t in group]))
    if pick:
        fig.add_trace(go.Scatter(
            x=[pick["params"]], y=[pick["selection_mean"]],
            error_y=dict(type="data", array=[pick["selection_std"] or 0.0]), mode="markers",
            name=f"pick over {pick['seeds']} seed(s) (selection)", marker=dict(color="#2ca02c", size=13, symbol="diamond"),
            text=[f"trial {pick['trial']}: dev {_pm(pick['dev_mean'], pick['dev_std'])}"]))
    if baselines:
        fig.add_trace(go.Scatter(
            x=[b["params"] for b in baselines], y=[b["selection_mean"] for b in baselines], mode="markers+text",
            name="baselines (selection)", marker=dict(color="#9467bd", size=11, symbol="x"),
            text=[b["config"] for b in baselines], textposition="top center"))
    fig.add_vline(x=budget, line_dash="dash", annotation_text=f"budget {format_params(budget)}")
    if trivial:
        fig.add_annotation(text=f"input-blind baseline: dev {trivial.get('dev', 0.0):.4f}, selection "
                                f"{trivial.get('selection', 0.0):.4f}", xref="paper", yref="paper", x=0, y=1.06,
                           showarrow=False)
    fig.update_layout(title=f"{study.study_name}: {metric} vs trainable adapter parameters",
                      xaxis_title="trainable adapter parameters", yaxis_title=metric)
    return fig


def hypervolume_figure(study: optuna.Study, budget: int, score_floor: float = 0.0,
                       floor_name: str = "the input-blind score"):
    import plotly.graph_objects as go

    hist = hypervolume_history(study, budget, score_floor)
    fig = go.Figure(go.Scatter(x=[h["configurations"] for h in hist], y=[h["hypervolume"] for h in hist],
                               mode="lines+markers"))
    fig.update_layout(title=f"{study.study_name}: hypervolume (reference: {floor_name} {score_floor:.4f}, "
                            f"params = budget {format_params(budget)})",
                      xaxis_title="configurations trained", yaxis_title="hypervolume (params / budget)")
    return fig


IMPORTANCE_MIN_TRIALS = 10   # fANOVA on fewer top-rung trials ranks noise
NOT_STRUCTURE = ("alpha", "learning_rate", "dropout", "inject_alpha", "merge_criterion", "sfs_k", "weight_decay",
                 "warmup_ratio")  # cannot change the parameter count


def importances(study: optuna.Study) -> dict[str, dict[str, float]]:
    """fANOVA importances on the top-rung trials: of every parameter for the score; of the structure
    parameters only for the parameter count (alpha or the lr cannot change it). Empty below
    ``IMPORTANCE_MIN_TRIALS`` trials."""
    out = {}
    feas = [t for t in study.get_trials(deepcopy=False) if record.is_feasible(t)]
    if len(feas) < IMPORTANCE_MIN_TRIALS:
        return out
    common = set.intersection(*(set(t.params) for t in feas))
    for k, name in enumerate(study.metric_names or ["score", "params"]):
        params = None if k == 0 else sorted(p for p in common if p not in NOT_STRUCTURE)
        if params == []:
            continue
        try:
            imp = optuna.importance.get_param_importances(study, target=lambda t, k=k: t.values[k], params=params,
                                                          evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
        except (RuntimeError, ValueError, ZeroDivisionError):
            continue
        out[name] = {p: round(float(v), 4) for p, v in imp.items()}
    return out


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None or mean != mean:
        return ""
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def best_baseline(baselines: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The baseline a user would have set by hand, chosen on the selection split (never on dev); the head
    alone is the front's zero, not a contender."""
    rivals = [b for b in baselines if b["config"] != HEAD_ONLY]
    return max(rivals, key=lambda b: b["selection_mean"]) if rivals else None


def _devs(r: dict[str, Any]) -> list[float]:
    """Per-seed dev scores of a pick or baseline summary (its runs; a summary without them is its mean alone)."""
    runs = [x["dev"] for x in r.get("runs") or [] if x.get("dev") is not None]
    return runs or ([r["dev_mean"]] if r.get("dev_mean") is not None and r["dev_mean"] == r["dev_mean"] else [])


def verdict(pick: dict[str, Any] | None, baselines: list[dict[str, Any]], metric: str,
            trivial_dev: float | None = None) -> tuple[bool | None, str, Comparison | None]:
    """(dominates?, one sentence, the comparison) of the pick against the best baseline on dev, over seeds.

    The comparison (``stats.compare``) is *higher*, *level* (equivalence within the metric's practical
    margin), *lower* or *inconclusive*. The pick dominates when it is higher at no more params, or level at
    <= 0.7x the params. Before that: when training adds less over the head alone (else the input-blind
    score, ``trivial_dev``) than a few seed standard deviations, no comparison can be made."""
    top = best_baseline(baselines)
    if pick is None or top is None:
        return None, "No verdict: the pick or the baselines were not trained (--seeds 0 / --no-baselines).", None
    itself = bool(pick.get("builtin")) and top["config"] == pick["builtin"]
    if itself:  # the pick is the best baseline: how it stands against the next one still tells a user something
        top = best_baseline([b for b in baselines if b["config"] != pick["builtin"]])
        if top is None:
            return False, (f"The pick is the built-in `{pick['builtin']}` itself, which a user sets by hand, and the "
                           "only baseline trained."), None
    a, b = _devs(pick), _devs(top)
    margin = practical_margin(metric)
    c = compare(a, b, margin)
    head = next((x for x in baselines if x["config"] == HEAD_ONLY), None)
    head_devs = _devs(head) if head else ([trivial_dev] if trivial_dev is not None else [])
    sd, _ = pooled_sd(a, b, head_devs)
    if head_devs:
        best_mean = max(statistics.fmean(a), statistics.fmean(b))
        if training_adds_enough([best_mean], head_devs, sd) is False:
            what = "the head alone" if head else "the input-blind score"
            return False, (f"The comparison cannot be made: training adds {best_mean - statistics.fmean(head_devs):+.4f} "
                           f"dev {metric} over {what}, less than {HEAD_GAIN_SDS:g} seed standard deviations "
                           f"({HEAD_GAIN_SDS:g} x {sd:.4f}), so these runs rank noise (train longer: --min-steps)."), c
    ratio = pick["params"] / top["params"] if top["params"] else float("inf")
    evidence = (f"dev {metric} {statistics.fmean(a):.4f} vs {statistics.fmean(b):.4f} ({len(a)} vs {len(b)} seeds, "
                f"{c.interval()}), {pick['params']:,} vs {top['params']:,} params")
    if pick.get("builtin"):
        # a user sets a built-in by hand; how it stands against the best baseline still tells them something
        head = (f"The pick is the built-in `{pick['builtin']}` itself, which a user sets by hand: the search found "
                f"no configuration of its own that dominates it")
        note = f"; {c.decide_note()}" if c.verdict == "inconclusive" else ""
        against = f"; it is also the best baseline. Against the next best, `{top['config']}`," if itself else \
            f". Against the best baseline `{top['config']}`"
        return False, f"{head}{against} it is {c.verdict}: {evidence}{note}.", c
    vs = f"trial {pick['trial']} against the best baseline `{top['config']}`: {evidence}"
    if c.verdict == "higher" and pick["params"] <= top["params"]:
        return True, f"The search beat hand-setting: higher, with no more params: {vs}.", c
    if c.verdict == "level" and ratio <= 0.7:
        return True, f"The search beat hand-setting: level at {ratio:.0%} of the params: {vs}.", c
    if c.verdict == "inconclusive":
        return False, f"Inconclusive: {vs}; {c.decide_note()}.", c
    return False, f"The search did not dominate hand-setting ({c.verdict}, at {ratio:.0%} of the params): {vs}.", c


def comparison_markdown(pick: dict[str, Any] | None, best: dict[str, Any] | None, baselines: list[dict[str, Any]],
                        metric: str, trivial: dict[str, float]) -> list[str]:
    """The pick (and the best, when they differ) beside every baseline, over seeds, and the verdict."""
    lines = [f"| what | {metric} (selection) | {metric} (dev) | params | seeds |", "|---|---|---|---|---|"]
    rows = []
    if pick:
        rows.append((f"**pick**: trial {pick['trial']}", pick))
    if best and (not pick or best["trial"] != pick["trial"]):
        rows.append((f"best trial {best['trial']}", best))
    for b in baselines:
        kept = ((b.get("runs") or [{}])[0].get("final_structure") or {}).get("kept_params")
        extra = f"; trains {b['params']:,}, keeps {kept:,}" if kept is not None else ""
        rows.append((f"baseline `{b['config']}` ({b['source']}{extra})", b))
    for name, r in rows:
        lines.append(f"| {name} | {_pm(r['selection_mean'], r['selection_std'])} | {_pm(r['dev_mean'], r['dev_std'])} | "
                     f"{r['params']:,} | {r['seeds']} |")
    lines.append(f"| input-blind (majority class / mean) | {trivial.get('selection', 0):.4f} | {trivial.get('dev', 0):.4f} | 0 | |")
    lines.append("")
    lines += [f"**Verdict.** {verdict(pick, baselines, metric, trivial.get('dev'))[1]}", ""]
    return lines


def hv_reference(study: optuna.Study, ctx: SearchContext) -> tuple[float, str]:
    """The hypervolume's score reference: the head alone's selection score where it was trained, else the
    input-blind score; named wherever a hypervolume is printed."""
    ref = study.user_attrs.get(record.HV_REFERENCE)
    if ref:
        return float(ref["score"]), ref["name"]
    return ctx.trivial, "the input-blind score"


def write_artifacts(study: optuna.Study, ctx: SearchContext, out: Path, picked: optuna.trial.FrozenTrial | None,
                    search_wall_s: float, *, pick: dict[str, Any] | None = None, best: dict[str, Any] | None = None,
                    noise: dict[str, Any] | None = None, baselines: list[dict[str, Any]] | None = None) -> dict[str, Path]:
    """Write the study's artifacts to ``out`` (best_config.yaml, the charts, importances, trials.csv, report.md,
    retrain.json) and attach the notes and charts to the study for optuna-dashboard; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    baselines = baselines or []
    metric = ctx.task.primary_metric
    trivial = {"selection": ctx.trivial, "dev": ctx.trivial_dev}
    head = next((b for b in baselines if b["config"] == HEAD_ONLY), None)
    if head is not None:
        study.set_user_attr(record.HV_REFERENCE, {"score": head["selection_mean"], "name": "the head alone"})
    ref, ref_name = hv_reference(study, ctx)
    paths: dict[str, Path] = {}
    if picked is not None:
        cfg = best_config_dict(picked, study.study_name)
        paths["best_config"] = out / "best_config.yaml"
        paths["best_config"].write_text(yaml.safe_dump(cfg, sort_keys=False))
    pf = pareto_figure(study, ctx.budget, metric, pick, baselines, trivial)
    hf = hypervolume_figure(study, ctx.budget, ref, ref_name)
    paths["pareto"] = out / "pareto.html"
    paths["hypervolume"] = out / "hypervolume.html"
    write_offline_html(pf, paths["pareto"])
    write_offline_html(hf, paths["hypervolume"])
    imp = importances(study)
    paths["importances"] = out / "importances.json"
    paths["importances"].write_text(json.dumps(imp, indent=2))
    paths.update(write_tables_and_charts(study, out, imp))
    cost = cost_totals(study)
    hv = study_hypervolume(study, ctx.budget, ref)
    front = pareto_front(study)
    tied = tied_numbers(study, noise)
    refuted = refuted_ties(study) if noise else set()
    lines = [f"# {study.study_name}", "",
             f"Task **{ctx.task.name}** ({metric}), budget **{format_params(ctx.budget)}** trainable adapter parameters "
             f"(exact count; head of {ctx.shape.head_params:,} params reported apart), space `{ctx.space.name}`. "
             f"Trials are scored on a selection split held out of the training data "
             f"({int(ctx.settings.selection_fraction * 100)}%, fixed); the dev set chooses nothing. The top rung is "
             f"the full run ({ctx.full_steps} steps on {ctx.n_train_full:,} examples); rungs "
             f"{', '.join(f'{f:.3g}' for f in ctx.fidelity.fractions)}.", "",
             "## Pareto front of the trials (top rung, selection split)", "", front_markdown(study, metric, tied, refuted), "",
             f"Hypervolume: {hv:.4f} (reference point: {ref_name}, {metric} {ref:.4f}, and params = budget; "
             f"params divided by the budget).", ""]
    if noise:
        if noise.get("baselines"):
            where = (f"Seed noise, from the cached baseline seeds ("
                     f"{', '.join(f'`{k}` {len(v)}' for k, v in noise['baselines'].items())} seeds): selection "
                     f"{metric} sd {noise['std']:.4f}; the best trial {noise['trial']} scores {noise['mean']:.4f} "
                     f"over {noise['seeds']} run(s) (it trains no seed to measure the noise)")
        else:
            where = (f"Seed noise, measured on trial {noise['trial']} over {noise['seeds']} seeds: selection {metric} "
                     f"{noise['mean']:.4f} ± {noise['std']:.4f}")
        bar = (f" (where its first seed, were it the mean of its {noise['candidate_seeds']} seeds, would pass the "
               "recheck: further down the check would likelier refute the tie than hold it, so it trains no seeds)"
               if noise.get("candidate_seeds", 1) >= 2 else "")
        within = (f"score is within {noise['threshold']:.4f} of that mean{bar}" if noise["threshold"] > 0 else
                  f"score is at least {-noise['threshold']:.4f} above that mean{bar}: at this noise no point below "
                  "the best is close enough")
        lines += [f"{where}; a front point is tied with it (marked *tied*) when its {within}. The pick's tie is "
                  f"rechecked over its own "
                  f"seeds: it holds only where they show it no worse than the best by more than "
                  f"{noise.get('margin', 0.01):g} (the 90% interval of the difference above -{noise.get('margin', 0.01):g}); "
                  f"one that does not, inconclusive included, is marked *not tied over its seeds* and the next "
                  f"candidate is tried.", ""]
    if front and max(t.values[0] for t in front) <= ref:
        lines += [f"**Nothing learned:** no trial beats {ref_name} ({ref:.4f}) on the selection split.", ""]
    if picked is not None:
        lines += [f"Picked trial {picked.number} ({ctx.settings.pick}): {metric} {picked.values[0]:.4f}, "
                  f"{int(picked.values[1]):,} params."
                  + (f" Tied on their first seed, not over their own: trial {', '.join(map(str, sorted(refuted)))}."
                     if refuted else ""), ""]
    if pick or baselines:
        lines += ["## The pick beside the baselines (same training run, seeds as listed)", "",
                  *comparison_markdown(pick, best, baselines, metric, trivial)]
    lines += ["## Cost", "",
              f"- trials: {cost['trials']} ({', '.join(f'{k[2:]} {v}' for k, v in cost.items() if k.startswith('n_'))})",
              f"- search: {cost['wall_s']:.0f}s of training wall time, {cost['cpu_s']:.0f} CPU-s, {cost['gpu_s']:.0f} GPU-s "
              f"(this session: {search_wall_s:.0f}s wall)", *_stage_lines(study),
              "", "## Parameter importances (fANOVA)", "",
              (f"On the {len(feasible_trials(study))} top-rung trials; for the parameter count, the structure "
               "parameters only." if imp else f"Not computed: fewer than {IMPORTANCE_MIN_TRIALS} top-rung trials."),
              "", "```json", json.dumps(imp, indent=2), "```", "",
              "Charts: `pareto.html`, `hypervolume.html`, `importances.html` (open offline); all trials: `trials.csv`. "
              "Dashboard: `autolor2c dashboard` (these files are the study's artifacts there)."]
    paths["report"] = out / "report.md"
    paths["report"].write_text("\n".join(lines) + "\n")
    paths["retrain"] = out / "retrain.json"
    paths["retrain"].write_text(json.dumps({"pick": pick, "best": best, "noise": noise, "baselines": baselines},
                                           indent=2, default=str))
    comparison = comparison_markdown(pick, best, baselines, metric, trivial) if (pick or baselines) else []
    dominates, sentence, c = verdict(pick, baselines, metric, trivial["dev"])
    study.set_user_attr(record.VERDICT, {"sentence": sentence, "dominates": dominates,
                                         "comparison": None if c is None else c.__dict__})
    _dashboard_notes(study, metric, hf, pf, pick, tied, refuted, comparison)
    return paths


def tied_numbers(study: optuna.Study, noise: dict[str, Any] | None) -> set[int]:
    """Front trials statistically tied with the best (within the recorded seed noise)."""
    return {t.number for t in tied_with_the_best(study)} if noise else set()


def _dashboard_notes(study, metric, hv_fig, pareto_fig, pick, tied, refuted, comparison: list[str]) -> None:
    """Attach the front table and the charts to the study so optuna-dashboard shows them."""
    try:
        from optuna_dashboard import save_note, save_plotly_graph_object
    except ImportError:
        return
    note = f"## Pareto front\n\n{front_markdown(study, metric, tied, refuted)}\n"
    if pick:
        note += (f"\n**Pick** trial {pick['trial']}: dev {metric} {_pm(pick['dev_mean'], pick['dev_std'])} "
                 f"over {pick['seeds']} seed(s)\n")
    if comparison:
        note += "\n## The pick beside the baselines\n\n" + "\n".join(comparison) + "\n"
    save_note(study, note)
    save_plotly_graph_object(study, hv_fig, graph_object_id="hypervolume")
    save_plotly_graph_object(study, pareto_fig, graph_object_id="pareto")
