"""After a search: retrain the picked configuration with several seeds, and write the artifacts
(best config YAML, adapter, plotly charts, importances, report.md) plus notes for optuna-dashboard."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import optuna
import yaml

from autolor2c.errors import UserError
from autolor2c.train import TrainArgs, train

from .artifacts import write_offline_html, write_tables_and_charts
from .budget import format_params
from .space import TrialPlan
from .study import (
    SearchContext,
    cost_totals,
    hypervolume_history,
    is_feasible,
    pareto_front,
    plan_to_spec,
    study_hypervolume,
)


def trial_plan(t: optuna.trial.FrozenTrial) -> TrialPlan:
    if "plan" not in t.user_attrs:
        raise UserError(f"trial {t.number} has no recorded plan (not an autolor2c trial)")
    return TrialPlan.from_dict(t.user_attrs["plan"])


def best_config_dict(t: optuna.trial.FrozenTrial, study_name: str) -> dict[str, Any]:
    """The config file that ``autolor2c train --config`` reads back."""
    plan = trial_plan(t)
    spec = plan_to_spec(plan)
    return {"method": spec.method, "adapter": spec.config.to_dict(), "train": dict(plan.train),
            "source": {"study": study_name, "trial": t.number,
                       "values": list(t.values), "final_structure": t.user_attrs.get("final_structure")}}


def retrain(study: optuna.Study, ctx: SearchContext, out: Path, seeds: int, trial: optuna.trial.FrozenTrial,
            progress: bool = True) -> dict[str, Any] | None:
    """Train ``trial``'s configuration on the full training set with ``seeds`` seeds; keep seed 0's adapter."""
    if seeds <= 0:
        return None
    s = ctx.settings
    plan = trial_plan(trial)
    spec = plan_to_spec(plan)
    runs = []
    for seed in range(seeds):
        args = TrainArgs(epochs=s.retrain_epochs or plan.train.get("epochs", s.epochs),
                         learning_rate=plan.train.get("learning_rate", 2e-3),
                         batch_size=plan.train.get("batch_size", s.batch_size),
                         max_length=plan.train.get("max_length", s.max_length),
                         max_train_samples=s.retrain_samples, max_eval_samples=s.max_eval_samples,
                         backbone_dropout=s.backbone_dropout, seed=seed, progress=progress)
        r = train(ctx.task, spec, args, model_name=s.model, data_dir=s.data_dir,
                  out_dir=out / "retrain" / f"seed{seed}")
        r.pop("model_object", None)
        runs.append({"seed": seed, "score": r["primary_score"], "scores": r["scores"], "params": r["trainable_params"],
                     "wall_s": r["wall_time_s"], "cpu_s": r["cpu_time_s"], "n_train": r["n_train"],
                     "history": [{k: e[k] for k in ("op", "step") if k in e} for e in r["history"]]})
        print(f"  retrain seed {seed}: {ctx.task.primary_metric} = {r['primary_score']:.4f} "
              f"({r['trainable_params']:,} params, {r['wall_time_s']:.0f}s)")
    _replace_dir(out / "retrain" / "seed0" / "adapter", out / "adapter")
    scores = [r["score"] for r in runs]
    result = {"trial": trial.number, "seeds": seeds, "mean": statistics.fmean(scores),
              "std": statistics.stdev(scores) if len(scores) > 1 else 0.0, "runs": runs,
              "n_train": runs[0]["n_train"], "wall_s": round(sum(r["wall_s"] for r in runs), 3),
              "cpu_s": round(sum(r["cpu_s"] for r in runs), 3), "params": runs[0]["params"]}
    study.set_user_attr("retrain", {k: v for k, v in result.items() if k != "runs"})
    (out / "retrain.json").write_text(json.dumps(result, indent=2))
    return result


def _replace_dir(src: Path, dst: Path) -> None:
    import shutil

    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)


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


def pareto_figure(study: optuna.Study, budget: int, metric: str):
    import plotly.graph_objects as go

    trials = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    feas = [t for t in trials if is_feasible(t)]
    infeas = [t for t in trials if not is_feasible(t)]
    front = {t.number for t in pareto_front(study)}
    fig = go.Figure()
    for name, group, color in (("feasible", [t for t in feas if t.number not in front], "#7aa6d6"),
                               ("Pareto front", [t for t in feas if t.number in front], "#d62728"),
                               ("over budget (not trained)", infeas, "#bbbbbb")):
        fig.add_trace(go.Scatter(
            x=[t.values[1] for t in group], y=[t.values[0] for t in group],  # untrained trials hold score 0
            mode="markers", name=name, marker=dict(color=color, size=10 if name == "Pareto front" else 7),
            text=[f"trial {t.number}: {_structure_text(t.user_attrs.get('final_structure', {}))}" for t in group]))
    fig.add_vline(x=budget, line_dash="dash", annotation_text=f"budget {format_params(budget)}")
    fig.update_layout(title=f"{study.study_name}: {metric} vs trainable adapter parameters",
                      xaxis_title="trainable adapter parameters", yaxis_title=metric)
    return fig


def hypervolume_figure(study: optuna.Study, budget: int):
    import plotly.graph_objects as go

    hist = hypervolume_history(study, budget)
    fig = go.Figure(go.Scatter(x=[h["n"] for h in hist], y=[h["hypervolume"] for h in hist], mode="lines+markers"))
    fig.update_layout(title=f"{study.study_name}: hypervolume (reference: score 0, params = budget {format_params(budget)})",
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


def write_artifacts(study: optuna.Study, ctx: SearchContext, out: Path, retrain_result: dict[str, Any] | None,
                    picked: optuna.trial.FrozenTrial | None, search_wall_s: float) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    metric = ctx.task.primary_metric
    paths: dict[str, Path] = {}
    if picked is not None:
        cfg = best_config_dict(picked, study.study_name)
        paths["best_config"] = out / "best_config.yaml"
        paths["best_config"].write_text(yaml.safe_dump(cfg, sort_keys=False))
    pf = pareto_figure(study, ctx.budget, metric)
    hf = hypervolume_figure(study, ctx.budget)
    paths["pareto"] = out / "pareto.html"
    paths["hypervolume"] = out / "hypervolume.html"
    write_offline_html(pf, paths["pareto"])
    write_offline_html(hf, paths["hypervolume"])
    imp = importances(study)
    paths["importances"] = out / "importances.json"
    paths["importances"].write_text(json.dumps(imp, indent=2))
    paths.update(write_tables_and_charts(study, out, imp))
    cost = cost_totals(study)
    hv = study_hypervolume(study, ctx.budget)
    lines = [f"# {study.study_name}", "",
             f"Task **{ctx.task.name}** ({metric}), budget **{format_params(ctx.budget)}** trainable adapter parameters "
             f"(exact count; head of {ctx.shape.head_params:,} params reported apart), space `{ctx.space.name}`.", "",
             "## Pareto front (feasible, full fidelity)", "", front_markdown(study, metric), "",
             f"Hypervolume: {hv:.4f} (reference point: {metric} 0, params = budget; params divided by the budget).", ""]
    if picked is not None:
        lines += [f"Picked trial {picked.number} ({ctx.settings.pick}): {metric} {picked.values[0]:.4f}, "
                  f"{int(picked.values[1]):,} params.", ""]
    if retrain_result:
        lines += ["## Retrain on the full training set", "",
                  f"{retrain_result['seeds']} seeds on {retrain_result['n_train']:,} examples: {metric} = "
                  f"**{retrain_result['mean']:.4f} ± {retrain_result['std']:.4f}** "
                  f"(seeds: {', '.join(format(r['score'], '.4f') for r in retrain_result['runs'])}); "
                  f"{retrain_result['params']:,} params; {retrain_result['wall_s']:.0f}s wall, {retrain_result['cpu_s']:.0f} CPU-s.", ""]
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
        note += (f"\n**Retrained** trial {retrain_result['trial']}: {metric} {retrain_result['mean']:.4f} ± "
                 f"{retrain_result['std']:.4f} over {retrain_result['seeds']} seeds\n")
    save_note(study, note)
    save_plotly_graph_object(study, hv_fig, graph_object_id="hypervolume")
    save_plotly_graph_object(study, pareto_fig, graph_object_id="pareto")
