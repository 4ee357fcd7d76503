"""What the two training defaults introduced at stop 8 are worth: training BERT's pooler with the head,
and switching off the frozen backbone's own dropout. IMLoR2C (built-in config) on a seeded 16,000-example
SST-2 subset, 1 epoch, batch 32, full dev (872); 3 seeds per variant at lr 2e-3, then an lr sweep of the
default variant (seed 0).

    python bench/head_ablation.py [--train-samples N] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

from bench.common import GLUE_DIR, machine_info, md_table, write_results  # noqa: E402

from autolor2c.tasks import get_task  # noqa: E402
from autolor2c.train import TrainArgs, load_backbone, load_tokenizer, read_config_file, train  # noqa: E402
from autolor2c.train.loop import prepare_data  # noqa: E402

# name -> (head_modules, backbone_dropout); None head = the library default (pooler + classifier)
VARIANTS = {
    "frozen pooler, backbone dropout on (before)": (["classifier"], None),
    "frozen pooler, backbone dropout off": (["classifier"], 0.0),
    "trained pooler, backbone dropout on": (None, None),
    "trained pooler, backbone dropout off (default now)": (None, 0.0),
}
SWEEP_LRS = (1e-3, 4e-3, 1e-2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train-samples", type=int, default=16000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--lr", type=float, default=2e-3)
    a = ap.parse_args()
    task = get_task("sst2")
    base_spec, _ = read_config_file("imlor2c")

    def targs(seed: int, lr: float, dropout) -> TrainArgs:
        return TrainArgs(epochs=1.0, learning_rate=lr, batch_size=32, max_length=128, max_train_samples=a.train_samples,
                         data_seed=0, seed=seed, backbone_dropout=dropout, progress=False)

    prepare_data(task, load_tokenizer(None), targs(0, a.lr, 0.0), data_dir=GLUE_DIR)  # warm caches
    load_backbone(None, task.num_labels)
    data = {"benchmark": "head_ablation", "machine": machine_info(),
            "setup": {"config": "imlor2c", "train_subset": a.train_samples, "epochs": 1, "lr": a.lr, "seeds": a.seeds,
                      "batch_size": 32, "dev": 872}, "runs": []}

    def one(name: str, head, dropout, seed: int, lr: float) -> None:
        spec = copy.deepcopy(base_spec)
        spec.lor2c.head_modules = head
        t0 = time.perf_counter()
        r = train(task, spec, targs(seed, lr, dropout), data_dir=GLUE_DIR)
        data["runs"].append({"variant": name, "seed": seed, "lr": lr, "accuracy": r.primary_score,
                             "head_params": r.head_params, "adapter_params": r.trainable_params,
                             "wall_s": round(time.perf_counter() - t0, 1), "steps": r.steps})
        print(data["runs"][-1], flush=True)
        write_results("head_ablation", data, render)

    for seed in a.seeds:
        for name, (head, dropout) in VARIANTS.items():
            one(name, head, dropout, seed, a.lr)
    default = list(VARIANTS)[-1]
    for lr in SWEEP_LRS:
        one(default, *VARIANTS[default], a.seeds[0], lr)


def render(d: dict) -> str:
    lr0 = d["setup"]["lr"]
    rows = []
    for name in VARIANTS:
        rs = [r for r in d["runs"] if r["variant"] == name and r["lr"] == lr0]
        if not rs:
            continue
        acc = [r["accuracy"] for r in rs]
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        rows.append([name, f"{100 * statistics.mean(acc):.2f} ± {100 * sd:.2f}", len(rs), f"{rs[0]['head_params']:,}",
                     f"{rs[0]['adapter_params']:,}", f"{statistics.mean(r['wall_s'] for r in rs):.1f}"])
    sweep = [[f"{r['lr']:g}", f"{100 * r['accuracy']:.2f}", r["seed"]] for r in d["runs"]
             if r["variant"] == list(VARIANTS)[-1] and (r["lr"] != lr0 or r["seed"] == d["setup"]["seeds"][0])]
    s = d["setup"]
    return (f"# Head and backbone-dropout ablation (IMLoR2C, SST-2)\n\n"
            f"Seeded {s['train_subset']:,}-example SST-2 subset, {s['epochs']} epoch, batch {s['batch_size']}, lr {lr0:g}, "
            f"full dev (872). mean ± std over seeds; wall = whole `train()` call on {d['machine']['cpu']}.\n\n"
            + md_table(["variant", "dev accuracy %", "seeds", "head params", "adapter params (final)", "wall s"], rows)
            + "\nLearning rate, default variant:\n\n" + md_table(["lr", "dev accuracy %", "seed"], sorted(sweep, key=lambda r: float(r[0]))))


if __name__ == "__main__":
    main()
