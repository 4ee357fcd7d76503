"""After a search: the artifacts (best config YAML, plotly charts, importances, report.md) and notes for
optuna-dashboard. Retraining lives in retrain.py; this module only renders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import optuna
import yaml

from .artifacts import write_offline_html, write_tables_and_charts
from .budget import format_params
from .retrain import trial_plan
from .study import (
    SearchContext,
    cost_totals,
    hypervolume_history,
    is_feasible,
    pareto_front,
    plan_to_spec,
    study_hypervolume,
)


def best_config_dict(t: optuna.trial.FrozenTrial, study_name: str) -> dict[str, Any]:
    """The config file that ``autolor2c train --config`` reads back."""
    plan = trial_plan(t)
    spec = plan_to_spec(plan)
    return {"method": spec.method, "adapter": spec.config.to_dict(), "train": dict(plan.train),
            "source": {"study": study_name, "trial": t.number,
                       "values": list(t.values), "final_structure": t.user_attrs.get("final_structure")}}


# --------------------------------------------------------------------------------------------------
def front_rows(study: optuna.Study) -> list[dict[str, Any]]:
    rows = []
    for t in pareto_front(study):
        st = t.user_attrs.get("final_structure", {})
        plan = t.user_attrs.get("plan", {})
        rows.append({"trial": t.number, "score": t.values[0], "params": int(t.values[1]),
                     "structure": _structure_text(st), "lr": plan.get("train", {}).get("learning_rate"),
                     "cost_s": t.user_attrs.get("cost_s")})
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
    return f"spans[{spans}] r={ranks[0] if len(ranks) == 1 else ranks}{share}{inj}"


def front_markdown(study: optuna.Study, metric: str) -> str:
    rows = front_rows(study)
    lines = [f"| trial | {metric} | params | structure | lr | cost (s) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lr = f"{r['lr']:.2e}" if isinstance(r["lr"], (int, float)) else ""
        lines.append(f"| {r['trial']} | {r['score']:.4f} | {r['params']:,} | {r['structure']} | {lr} | {r['cost_s']} |")
    return "\n".join(lines)


def print_front(study: optuna.Study, metric: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Pareto front of {study.study_name}")
    for col in ("trial", metric, "params", "structure", "lr", "cost (s)"):
        table.add_column(col)
    for r in front_rows(study):
        lr = f"{r['lr']:.2e}" if isinstance(r["lr"], (int, float)) else ""
        table.add_row(str(r["trial"]), f"{r['score']:.4f}", f"{r['params']:,}", r["structure"], lr, str(r["cost_s"]))
    Console(width=140).print(table)


def pareto_figure(study: optuna.Study, budget: int, metric: str, retrained: dict[str, Any] | None = None,
                  baselines: list[dict[str, Any]] | None = None, trivial: dict[str, float] | None = None):
    import plotly.graph_objects as go

    trials = [t for t in study.get_trials(deepcopy=False) if t.values is not None]
    feas = [t for t in trials if is_feasible(t)]
    front = {t.number for t in pareto_front(study)}
    fig = go.Figure()
    for name, group, color in (("trials (selection split)", [t for t in feas if t.number not in front], "#7aa6d6"),
                               ("trial front (selection split)", [t for t in feas if t.number in front], "#d62728")):
        if not group:
            continue
        fig.add_trace(go.Scatter(
            x=[t.values[1] for t in group], y=[t.values[0] for t in group],
            mode="markers", name=name, marker=dict(color=color, size=10 if "front" in name else 7),
            text=[f"trial {t.number}: {_structure_text(t.user_attrs.get('final_structure', {}))}" for t in group]))
    if retrained:
        pts = retrained["points"]
        fig.add_trace(go.Scatter(
            x=[p["params"] for p in pts], y=[p["dev_mean"] for p in pts],
            error_y=dict(type="data", array=[p["dev_std"] for p in pts]), mode="markers", name="retrained front (dev)",
            marker=dict(color="#2ca02c", size=12, symbol="diamond"),
            text=[f"trial {p['trial']} ({p['role']}), {p['seeds']} seed(s)" for p in pts]))
    if baselines:
        fig.add_trace(go.Scatter(
            x=[b["params"] for b in baselines], y=[b["dev_mean"] for b in baselines], mode="markers+text",
            name="hand-set built-ins (dev)", marker=dict(color="#9467bd", size=11, symbol="x"),
            text=[b["config"] for b in baselines], textposition="top center"))
    fig.add_vline(x=budget, line_dash="dash", annotation_text=f"budget {format_params(budget)}")
    if trivial:
        fig.add_annotation(text=f"input-blind baseline: dev {trivial.get('dev', 0.0):.4f}, selection "
                                f"{trivial.get('selection', 0.0):.4f}", xref="paper", yref="paper", x=0, y=1.06,
                           showarrow=False)
    fig.update_layout(title=f"{study.study_name}: {metric} vs trainable adapter parameters",
                      xaxis_title="trainable adapter parameters", yaxis_title=metric)
    return fig


def hypervolume_figure(study: optuna.Study, budget: int, score_floor: float = 0.0):
    import plotly.graph_objects as go

    hist = hypervolume_history(study, budget, score_floor)
    fig = go.Figure(go.Scatter(x=[h["n"] for h in hist], y=[h["hypervolume"] for h in hist], mode="lines+markers"))
    fig.update_layout(title=f"{study.study_name}: hypervolume (reference: the input-blind score {score_floor:.4f}, "
                            f"params = budget {format_params(budget)})",
                      xaxis_title="finished trials", yaxis_title="hypervolume (params / budget)")
    return fig


def importances(study: optuna.Study) -> dict[str, dict[str, float]]:
    out = {}
    feas = [t for t in study.get_trials(deepcopy=False) if is_feasible(t)]
    if len(feas) < 3:
        return out
    for k, name in enumerate(study.metric_names or ["score", "params"]):
        try:
            imp = optuna.importance.get_param_importances(study, target=lambda t, k=k: t.values[k],
                                                          evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
        except (RuntimeError, ValueError, ZeroDivisionError):
            continue
        out[name] = {p: round(float(v), 4) for p, v in imp.items()}
    return out


def comparison_markdown(retrained: dict[str, Any] | None, baselines: list[dict[str, Any]] | None, metric: str,
                        trivial: dict[str, float]) -> list[str]:
    """The retrained front beside the hand-set built-ins, and a plain verdict."""
    lines = [f"| what | {metric} (selection) | {metric} (dev) | params | seeds |", "|---|---|---|---|---|"]
    rows = []
    for p in (retrained or {}).get("points", []):
        rows.append((f"trial {p['trial']} ({p['role']})", p))
    for b in baselines or []:
        rows.append((f"built-in `{b['config']}`", b))
    for name, r in rows:
        lines.append(f"| {name} | {r['selection_mean']:.4f} ± {r['selection_std']:.4f} | "
                     f"{r['dev_mean']:.4f} ± {r['dev_std']:.4f} | {r['params']:,} | {r['seeds']} |")
    lines.append(f"| input-blind (majority class / mean) | {trivial.get('selection', 0):.4f} | {trivial.get('dev', 0):.4f} | 0 | |")
    lines.append("")
    if retrained:
        points = retrained["points"]
        best_dev = max(p["dev_mean"] for p in points)
        if best_dev <= trivial.get("dev", 0.0):
            lines.append(f"**Nothing learned:** no retrained front point beats the input-blind score on dev "
                         f"({best_dev:.4f} <= {trivial.get('dev', 0):.4f}). Train the retrain longer (`--retrain-epochs`) "
                         "or the trials on more data (`--max-train-samples`), or try another space.")
        if baselines:
            top = max(baselines, key=lambda b: b["dev_mean"])
            dom = [p for p in points if p["dev_mean"] > top["dev_mean"] and p["params"] <= top["params"]]
            if dom:
                p = dom[0]
                lines.append(f"**The search beat hand-setting:** trial {p['trial']} has a higher dev {metric} "
                             f"({p['dev_mean']:.4f}) than the best hand-set built-in `{top['config']}` "
                             f"({top['dev_mean']:.4f}) with no more params ({p['params']:,} <= {top['params']:,}).")
            else:
                lines.append(f"**The search did not dominate hand-setting:** the best hand-set built-in `{top['config']}` "
                             f"has dev {metric} {top['dev_mean']:.4f} with {top['params']:,} params; no retrained front "
                             f"point is better with no more params.")
        lines.append("")
    return lines


def write_artifacts(study: optuna.Study, ctx: SearchContext, out: Path, retrain_result: dict[str, Any] | None,
                    picked: optuna.trial.FrozenTrial | None, search_wall_s: float,
                    baselines: list[dict[str, Any]] | None = None) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    metric = ctx.task.primary_metric
    trivial = {"selection": ctx.trivial, "dev": ctx.trivial_dev}
    paths: dict[str, Path] = {}
    if picked is not None:
        cfg = best_config_dict(picked, study.study_name)
        paths["best_config"] = out / "best_config.yaml"
        paths["best_config"].write_text(yaml.safe_dump(cfg, sort_keys=False))
    pf = pareto_figure(study, ctx.budget, metric, retrain_result, baselines, trivial)
    hf = hypervolume_figure(study, ctx.budget, ctx.trivial)
    paths["pareto"] = out / "pareto.html"
    paths["hypervolume"] = out / "hypervolume.html"
    write_offline_html(pf, paths["pareto"])
    write_offline_html(hf, paths["hypervolume"])
    imp = importances(study)
    paths["importances"] = out / "importances.json"
    paths["importances"].write_text(json.dumps(imp, indent=2))
    paths.update(write_tables_and_charts(study, out, imp))
    cost = cost_totals(study)
    hv = study_hypervolume(study, ctx.budget, ctx.trivial)
    front = pareto_front(study)
    lines = [f"# {study.study_name}", "",
             f"Task **{ctx.task.name}** ({metric}), budget **{format_params(ctx.budget)}** trainable adapter parameters "
             f"(exact count; head of {ctx.shape.head_params:,} params reported apart), space `{ctx.space.name}`. "
             f"Trials are scored on a selection split held out of the training data "
             f"({int(ctx.settings.selection_fraction * 100)}%, fixed); the dev set chooses nothing.", "",
             "## Pareto front of the trials (feasible, full fidelity, selection split)", "", front_markdown(study, metric), "",
             f"Hypervolume: {hv:.4f} (reference point: the input-blind {metric} {ctx.trivial:.4f}, params = budget; "
             f"params divided by the budget).", ""]
    if front and max(t.values[0] for t in front) <= ctx.trivial:
        lines += [f"**Nothing learned:** no trial beats the input-blind {metric} ({ctx.trivial:.4f}) on the selection split.", ""]
    if picked is not None:
        lines += [f"Picked trial {picked.number} ({ctx.settings.pick}): {metric} {picked.values[0]:.4f}, "
                  f"{int(picked.values[1]):,} params.", ""]
    if retrain_result or baselines:
        n = (retrain_result or {}).get("pick", {}).get("n_train") or (baselines or [{}])[0].get("n_train")
        lines += [f"## Retrained on the training set ({n:,} examples) beside the hand-set built-ins", "",
                  *comparison_markdown(retrain_result, baselines, metric, trivial)]
    lines += ["## Cost", "",
              f"- trials: {cost['trials']} ({', '.join(f'{k[2:]} {v}' for k, v in cost.items() if k.startswith('n_'))})",
              f"- search: {cost['wall_s']:.0f}s of training wall time, {cost['cpu_s']:.0f} CPU-s, {cost['gpu_s']:.0f} GPU-s "
              f"(this session: {search_wall_s:.0f}s wall)",
              f"- retrain: {retrain_result['wall_s']:.0f}s wall, {retrain_result['cpu_s']:.0f} CPU-s" if retrain_result else "- retrain: skipped",
              "", "## Parameter importances (fANOVA)", "", "```json", json.dumps(imp, indent=2), "```", "",
              "Charts: `pareto.html`, `hypervolume.html`, `importances.html` (open offline); all trials: `trials.csv`. "
              "Dashboard: `autolor2c dashboard` (these files are the study's artifacts there)."]
    paths["report"] = out / "report.md"
    paths["report"].write_text("\n".join(lines) + "\n")
    _dashboard_notes(study, metric, hf, pf, retrain_result)
    return paths


def _dashboard_notes(study, metric, hv_fig, pareto_fig, retrain_result) -> None:
    """Attach the front table and the charts to the study so optuna-dashboard shows them."""
    try:
        from optuna_dashboard import save_note, save_plotly_graph_object
    except ImportError:
        return
    note = f"## Pareto front\n\n{front_markdown(study, metric)}\n"
    if retrain_result:
        p = retrain_result["pick"]
        note += (f"\n**Retrained** trial {p['trial']}: dev {metric} {p['dev_mean']:.4f} ± {p['dev_std']:.4f} "
                 f"over {p['seeds']} seeds\n")
    save_note(study, note)
    save_plotly_graph_object(study, hv_fig, graph_object_id="hypervolume")
    save_plotly_graph_object(study, pareto_fig, graph_object_id="pareto")
