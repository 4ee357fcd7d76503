"""SST-2 dev accuracy of LoRA, LoR2C, ShareLoR2C and IMLoR2C (built-in configs), 3 seeds each.

    python bench/quality_sst2.py [--quick] [--train-samples N] [--epochs E]

Every run uses the library's ``train()`` with the same settings: the same seeded training subset of the
real SST-2 train split (data_seed 0), the same number of epochs, learning rate 2e-3 (the train default), batch 32,
max_length 128 (dynamic padding), the loop's defaults otherwise (6% warm-up then linear decay, weight
decay 0.01, grad clip 1.0, length-grouped batches); the seed changes the head/adapter initialisation,
dropout and batch order. Threads: torch's default (all cores) unless OMP_NUM_THREADS is set, which the
library's loop respects; on a shared machine OMP_NUM_THREADS=1 is far less hurt by other processes
(see step_time.md). Dev accuracy is measured once, on the full 872-row dev split after the last
step (one evaluation per epoch, and 1 epoch). Runs go seed by seed (all four methods for seed 0, then
seed 1, ...), so slow phases of a shared machine spread over the methods. Results are rewritten after
every run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from bench.common import GLUE_DIR, machine_info, md_table, write_results  # noqa: E402

import torch  # noqa: E402

from autolor2c.tasks import get_task  # noqa: E402
from autolor2c.train import TrainArgs, load_backbone, load_tokenizer, read_config_file, train  # noqa: E402
from autolor2c.train.loop import prepare_data  # noqa: E402

METHODS = (("LoRA", "lora"), ("LoR2C", "lor2c"), ("ShareLoR2C", "sharelor2c"), ("IMLoR2C", "imlor2c"))
LR = 2e-3  # the train CLI default (the trained pooler diverges at 1e-2; bench/results/head_ablation.md)
BATCH = 32
MAX_LENGTH = 128


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke version: 960 examples, seed 0 only")
    ap.add_argument("--train-samples", type=int, default=None)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--render-only", action="store_true", help="re-render the md from results/quality_sst2.json")
    a = ap.parse_args()
    if a.render_only:
        import json

        from bench.common import RESULTS

        md = render_md(json.loads((RESULTS / "quality_sst2.json").read_text()))
        (RESULTS / "quality_sst2.md").write_text(md)
        print(md)
        return
    n_train = a.train_samples or (960 if a.quick else 16000)
    seeds = a.seeds or ([0] if a.quick else [0, 1, 2])
    task = get_task("sst2")
    info = machine_info()

    def targs(seed: int) -> TrainArgs:
        return TrainArgs(epochs=a.epochs, learning_rate=LR, batch_size=BATCH, max_length=MAX_LENGTH,
                         max_train_samples=n_train, data_seed=0, seed=seed, progress=False)

    # Warm the process-level caches (tokenizer, tokenised data, pretrained weights) so that the first
    # run's wall time is not charged with them.
    t0 = time.perf_counter()
    prepare_data(task, load_tokenizer(None), targs(0), data_dir=GLUE_DIR)
    load_backbone(None, task.num_labels)
    warm_s = time.perf_counter() - t0

    data = {
        "benchmark": "quality_sst2", "quick": a.quick, "machine": info,
        "setup": {"task": "sst2", "train_file": f"{GLUE_DIR}/SST-2/train.tsv", "dev_file": f"{GLUE_DIR}/SST-2/dev.tsv",
                  "train_subset": n_train, "subset_seed (data_seed)": 0, "epochs": a.epochs,
                  "learning_rate": LR, "batch_size": BATCH, "max_length": MAX_LENGTH, "seeds": seeds,
                  "methods": {n: c for n, c in METHODS},
                  "train_args": {k: v for k, v in vars(targs(0)).items() if k != "seed"},
                  "model": "embedded all-MiniLM-L6-v2", "torch_threads": torch.get_num_threads(),
                  "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                  "eval": "full dev split (872), once per epoch; primary_score = best eval (= the final one at 1 epoch)",
                  "cache_warmup_s": warm_s},
        "runs": [],
    }
    total0 = time.perf_counter()
    for seed in seeds:
        for name, cfg in METHODS:
            spec, overrides = read_config_file(cfg)
            print(f"[{time.strftime('%H:%M:%S')}] {name} ({cfg}) seed {seed} ...", flush=True)
            res = train(task, spec, args=targs(seed), data_dir=GLUE_DIR)
            run = {k: getattr(res, k) for k in ("method", "primary_metric", "primary_score", "scores", "trainable_params",
                                       "analytic_params", "planned_params", "head_params", "final_structure",
                                       "steps", "epochs", "n_train", "n_eval", "wall_time_s", "cpu_time_s",
                                       "threads", "evals")}
            run.update({"name": name, "config": cfg, "seed": seed, "config_overrides_ignored": overrides,
                        "history": [{k: v for k, v in e.items() if k not in ("scores",)} for e in res.history]})
            data["runs"].append(run)
            print(f"    acc={run['primary_score']:.4f} params={run['trainable_params']:,} "
                  f"wall={run['wall_time_s']:.1f}s cpu={run['cpu_time_s']:.1f}s steps={run['steps']}", flush=True)
            data["total_wall_s"] = time.perf_counter() - total0
            data["summary"] = summarise(data["runs"])
            write_results("quality_sst2", data, render_md)
            del res


def summarise(runs: list[dict]) -> dict:
    out = {}
    for name, _ in METHODS:
        rs = [r for r in runs if r["name"] == name]
        if not rs:
            continue
        acc = [r["primary_score"] for r in rs]
        out[name] = {
            "n_runs": len(rs), "seeds": [r["seed"] for r in rs], "accuracy": acc,
            "accuracy_mean": statistics.mean(acc), "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
            "trainable_adapter_params": sorted({r["trainable_params"] for r in rs}),
            "planned_params": rs[0]["planned_params"], "head_params": rs[0]["head_params"],
            "final_structures": [r["final_structure"] for r in rs],
            "wall_time_s_mean": statistics.mean(r["wall_time_s"] for r in rs),
            "cpu_time_s_mean": statistics.mean(r["cpu_time_s"] for r in rs),
        }
    return out


def render_md(d: dict) -> str:
    s = d["setup"]
    out = [f"# quality_sst2{' (--quick)' if d['quick'] else ''}: SST-2 dev accuracy, 4 methods\n",
           f"Each run: `train()` on a seeded {s['train_subset']:,}-example subset of SST-2 train (data_seed 0, the same for "
           f"all runs), {s['epochs']:g} epoch(s), lr {s['learning_rate']:g}, batch {s['batch_size']}, max_length "
           f"{s['max_length']}, loop defaults otherwise (warm-up 6%, linear decay, wd 0.01, clip 1.0); accuracy on the "
           f"full dev split ({d['runs'][0]['n_eval'] if d['runs'] else '?'} rows). Seeds {s['seeds']}. Embedded "
           f"all-MiniLM-L6-v2, {s['torch_threads']} CPU thread(s) (OMP_NUM_THREADS={s.get('OMP_NUM_THREADS')}). Load average at start "
           f"{d['machine']['loadavg_at_start']}, at end {d['machine'].get('loadavg_at_end')}.\n"]
    rows = []
    for name, m in d["summary"].items():
        params = "/".join(f"{p:,}" for p in m["trainable_adapter_params"])
        rows.append([name, f"**{100 * m['accuracy_mean']:.2f} ± {100 * m['accuracy_std']:.2f}**",
                     ", ".join(f"{100 * x:.2f}" for x in m["accuracy"]), params,
                     f"{m['planned_params']['initial']:,} → {m['planned_params']['final']:,}",
                     f"{m['head_params']:,}", f"{m['wall_time_s_mean']:.1f}", f"{m['cpu_time_s_mean']:.1f}"])
    out.append(md_table(["method", "dev acc % (mean ± std)", "per seed", "trainable adapter params (end)",
                         "planned initial → final", "head params", "wall s/run", "CPU s/run"], rows))
    out.append("\n## Runs\n")
    rows = [[r["name"], r["seed"], f"{100 * r['primary_score']:.2f}", f"{r['trainable_params']:,}",
             r["steps"], f"{r['wall_time_s']:.1f}", f"{r['cpu_time_s']:.1f}",
             "; ".join(f"{e['op']}@{e['step']}" + (f" {e['spans']}→{e['into']}" if e["op"] == "merge" else f" layer {e.get('layer')}")
                       for e in r["history"]) or "-"] for r in d["runs"]]
    out.append(md_table(["method", "seed", "dev acc %", "adapter params", "steps", "wall s", "CPU s",
                         "structure events"], rows))
    out.append(f"\nTotal wall time {d.get('total_wall_s', 0) / 60:.1f} min for {len(d['runs'])} runs.\n")
    return "\n".join(out)


if __name__ == "__main__":
    main()
