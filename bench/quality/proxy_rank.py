"""A zero-cost proxy, measured the way oneshot_rank.py measures the one-shot rung (issue 31: "if it does not
rank, measure a zero-cost proxy the same way").

Each configuration of the committed headline study is attached, untrained, to the backbone (its initial
structure, its rank, alpha and injections; the head from seed 0), and the gradient of the training loss on 8
fixed training batches is taken with respect to what it trains. B starts at zero, so A's gradient is zero and
SNIP-style saliencies (|theta * g|) vanish: the proxies are gradient sizes, as HeteroLoRA scores modules from
gradients at initialisation (arXiv 2406.14956):

- ``grad_norm``: the L2 norm of the adapter's gradient;
- ``adam_step``: learning rate x the L1 norm of that gradient, the loss decrease Adam's first step predicts
  (Adam moves each weight by about lr along the sign of its gradient): it sees the learning rate, which the
  one-shot rung cannot.

Correlated (Spearman, Kendall) with the configurations' full-run selection scores, beside the number of
parameters alone (the free baseline any proxy must beat). Kept per task as it ends:

    python -m bench.quality.proxy_rank
"""

from __future__ import annotations

import argparse
import json
import time

from bench.common import GLUE_DIR, RESULTS, machine_info, md_table, write_results
from bench.quality.oneshot_rank import TASKS, _corr, configurations

RAW = RESULTS / "proxy_rank_runs.jsonl"
BATCHES = 8


def measure(task: str) -> dict:
    import copy

    import torch

    from autolor2c.search.run import SearchSettings, plan_to_spec
    from autolor2c.search.space import TrialPlan
    from autolor2c.tasks import get_task
    from autolor2c.train import attach, load_backbone, load_tokenizer
    from autolor2c.train.loop import Batches, prepare_data

    torch.set_num_threads(1)
    spec_task = get_task(task)
    s = SearchSettings(task=task, data_dir=GLUE_DIR, progress=False)
    args = s.train_args({}, seed=0)
    tok = load_tokenizer(None)
    enc = prepare_data(spec_task, tok, args, GLUE_DIR)
    rows = Batches(enc["train"], tok.pad_token_id, spec_task.is_regression)
    gen = torch.Generator().manual_seed(0)
    batches = [rows.collate(idx, torch.device("cpu")) for idx in rows.order(args.batch_size, gen, True)[:BATCHES]]
    template = load_backbone(None, spec_task.num_labels, spec_task.is_regression, seed=0)
    out = []
    for c in configurations(task):
        t0, c0 = time.perf_counter(), time.process_time()
        plan = TrialPlan.from_dict(c["plan"])
        spec = plan_to_spec(plan)
        model = attach(copy.deepcopy(template), spec)
        head = {id(p) for n in model.head_modules for p in model.base_model.get_submodule(n).parameters()}
        params = [p for p in model.parameters() if p.requires_grad and id(p) not in head]
        model.eval()  # no dropout: the proxy is a function of the configuration, not of a dropout draw
        for b in batches:
            model(**b).loss.backward()
        g1 = sum(float(p.grad.abs().sum()) for p in params if p.grad is not None)
        g2 = sum(float(p.grad.pow(2).sum()) for p in params if p.grad is not None) ** 0.5
        lr = float(plan.train.get("learning_rate", args.learning_rate))
        out.append({"trials": c["trials"], "rungs": c["rungs"], "grad_norm": g2, "adam_step": lr * g1,
                    "params": int(sum(p.numel() for p in params)), "learning_rate": lr,
                    "wall_s": round(time.perf_counter() - t0, 3), "cpu_s": round(time.process_time() - c0, 3)})
        print("config", c["trials"], round(g2, 4), flush=True)
    return {"task": task, "metric": spec_task.primary_metric, "configs": out}


def kept() -> dict[str, dict]:
    if not RAW.is_file():
        return {}
    return {d["task"]: d for d in (json.loads(x) for x in RAW.read_text().splitlines() if x.strip())}


def summarise(raw: dict[str, dict]) -> dict:
    out = {"protocol": f"untrained configurations of the committed headline study; gradients over {BATCHES} fixed "
                       "training batches (batch 32); correlations against their full-run selection scores "
                       "(seed 0, trainer 4); 90% bootstrap interval over configurations", "tasks": {}}
    for task, d in raw.items():
        full = [c for c in d["configs"] if "1.0" in c["rungs"]]
        y = [c["rungs"]["1.0"]["score"] for c in full]
        out["tasks"][task] = {"metric": d["metric"], "n": len(full),
                              **{k: _corr([c[k] for c in full], y) for k in ("grad_norm", "adam_step", "params")},
                              "s_per_config": round(sum(c["wall_s"] for c in d["configs"]) / len(d["configs"]), 2),
                              "cpu_s_per_config": round(sum(c["cpu_s"] for c in d["configs"]) / len(d["configs"]), 2)}
        lows = sorted({float(f) for c in d["configs"] for f in c["rungs"] if float(f) < 1.0})
        if lows:  # where few reached the top (SST-2): against the study's lowest real rung, on every configuration
            at = [c for c in d["configs"] if any(float(f) == lows[0] for f in c["rungs"])]
            yl = [next(v["score"] for f, v in c["rungs"].items() if float(f) == lows[0]) for c in at]
            out["tasks"][task]["vs_lowest_rung"] = {"fraction": lows[0], **{
                k: _corr([c[k] for c in at], yl) for k in ("grad_norm", "adam_step", "params")}}
    return out


def render(d: dict) -> str:
    rows = []
    for task, e in d["tasks"].items():
        for k in ("grad_norm", "adam_step", "params"):
            ci = e[k]["spearman_ci90"]
            rows.append([task, k, "full run", e[k]["n"], e[k]["spearman"], f"{ci[0]} to {ci[1]}" if ci else "-",
                         e[k]["kendall"], e["s_per_config"] if k != "params" else 0])
            low = e.get("vs_lowest_rung")
            if low:
                ci = low[k]["spearman_ci90"]
                rows.append([task, k, f"rung {low['fraction']:.3f}", low[k]["n"], low[k]["spearman"],
                             f"{ci[0]} to {ci[1]}" if ci else "-", low[k]["kendall"],
                             e["s_per_config"] if k != "params" else 0])
    m = d.get("machine", {})
    return ("# A zero-cost proxy: do gradients at initialisation rank configurations like training them?\n\n"
            f"Machine: {m.get('cpu')}. Script: `bench/quality/proxy_rank.py`; raw values in `proxy_rank_runs.jsonl`. "
            "Protocol: " + d["protocol"] + ". `params` (the count alone) is the free baseline.\n\n"
            + md_table(["task", "proxy", "against", "n", "Spearman", "90% CI", "Kendall", "s/config"], rows)
            + "\nSeconds are wall seconds of one 1-thread process while other work shared the cores.\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--render", action="store_true")
    ap.add_argument("--tasks", default=",".join(TASKS))
    a = ap.parse_args()
    if not a.render:
        done = kept()
        for task in a.tasks.split(","):
            if task not in done:
                rec = measure(task)
                with open(RAW, "a") as f:
                    f.write(json.dumps(rec) + "\n")
    data = summarise(kept())
    data["machine"] = machine_info()
    write_results("proxy_rank", data, render, measured=not a.render)


if __name__ == "__main__":
    main()
