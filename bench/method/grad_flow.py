"""Gradient reaching the lowest layer's input: LoR2C vs stock-PEFT LoRA, while actually training on SST-2.

    python bench/grad_flow.py [--quick]

Same configs as step_time.py: LoR2C ``read_config_file("lor2c")`` (rank-8 bypass on every layer) and
LoRA ``read_config_file("lora")`` (rank 4 on query/value of every layer), both 36,864 adapter params.
Real SST-2 training batches (batch 32, max_length 64, dynamic padding), the same batches in the same
order for both; the training defaults otherwise (trained pooler + classifier head, the frozen backbone's
dropout off); AdamW lr 2e-3 (the train default, constant), weight decay 0.01 on matrices, gradient clipping 1.0 (as the
library's loop). At every step the L2 norm of d loss / d h0 is recorded, h0 being the hidden state
entering layer 0 (the output of ``bert.embeddings``). The embeddings are frozen, so their output does
not require grad: a forward hook makes it require grad (it is a leaf there) and hooks its gradient.
This adds the work of back-propagating into layer 0 but does not change any parameter's gradient.
For context the norm at the last layer's output (d loss / d h6) is recorded too.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.common import GLUE_DIR, find_embeddings, machine_info, md_table, write_results  # noqa: E402

import torch  # noqa: E402

from autolor2c.lor2c import find_layer_stack  # noqa: E402
from autolor2c.tasks import get_task  # noqa: E402
from autolor2c.train import TrainArgs, adapter_param_count, attach, load_backbone, load_tokenizer, read_config_file  # noqa: E402
from autolor2c.train.loop import Batches, prepare_data, seed_everything  # noqa: E402

LR = 2e-3
WEIGHT_DECAY = 0.01
GRAD_CLIP = 1.0
BATCH = 32
MAX_LENGTH = 64
SEED = 0


def run(config: str, batches: list[list[int]], rows: Batches, num_labels: int) -> dict:
    spec, _ = read_config_file(config)
    seed_everything(SEED)
    model = attach(load_backbone(None, num_labels, seed=SEED, dropout=TrainArgs().backbone_dropout), spec)
    model.train()
    adapter_params, head_params = adapter_param_count(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": WEIGHT_DECAY},
                             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}], lr=LR)

    h0_norms: list[float] = []
    top_norms: list[float] = []

    def on_embeddings(module, inputs, out):
        h = out[0] if isinstance(out, tuple) else out
        if not h.requires_grad:
            assert h.is_leaf, "embeddings output is not a leaf; cannot make it require grad"
            h.requires_grad_(True)
        h.register_hook(lambda g: h0_norms.append(float(g.norm())))

    def on_last_layer(module, inputs, out):
        h = out[0] if isinstance(out, tuple) else out
        h.register_hook(lambda g: top_norms.append(float(g.norm())))

    _, layers = find_layer_stack(model.base_model if hasattr(model, "bypasses") else model.base_model.model)
    hooks = [find_embeddings(model).register_forward_hook(on_embeddings),
             layers[-1].register_forward_hook(on_last_layer)]

    losses, t0 = [], time.perf_counter()
    torch.manual_seed(SEED)  # same dropout RNG start for both
    for idx in batches:
        batch = rows.collate(idx, torch.device("cpu"))
        loss = model(**batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        opt.step()
        losses.append(float(loss.detach()))
    wall = time.perf_counter() - t0
    for h in hooks:
        h.remove()
    assert len(h0_norms) == len(batches) == len(top_norms), (len(h0_norms), len(top_norms), len(batches))

    def stats(xs):
        k = max(1, min(10, len(xs) // 5))
        return {"mean": statistics.mean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0,
                "min": min(xs), "max": max(xs), f"mean_first_{k}": statistics.mean(xs[:k]),
                f"mean_last_{k}": statistics.mean(xs[-k:])}

    ratio = [a / b for a, b in zip(h0_norms, top_norms) if b > 0]
    return {
        "config": config, "spec": spec.to_dict(), "adapter_params": adapter_params, "head_params": head_params,
        "steps": len(batches), "wall_s": wall,
        "grad_norm_layer0_input": stats(h0_norms),
        "grad_norm_last_layer_output": stats(top_norms),
        "ratio_layer0_input_over_last_output": stats(ratio),
        "train_loss": stats(losses),
        "per_step": {"grad_norm_layer0_input": h0_norms, "grad_norm_last_layer_output": top_norms, "loss": losses},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 steps instead of 50")
    ap.add_argument("--steps", type=int, default=None)
    a = ap.parse_args()
    steps = a.steps or (10 if a.quick else 50)
    info = machine_info()

    task = get_task("sst2")
    args = TrainArgs(max_length=MAX_LENGTH, max_train_samples=steps * BATCH, data_seed=0, progress=False)
    tok = load_tokenizer(None)
    encoded = prepare_data(task, tok, args, data_dir=GLUE_DIR)
    rows = Batches(encoded["train"], tok.pad_token_id, task.is_regression)
    order = rows.order(BATCH, torch.Generator().manual_seed(SEED), group_by_length=False)[:steps]

    results = {}
    for name, cfg in (("LoR2C", "lor2c"), ("LoRA", "lora")):
        print(f"training {name} for {steps} steps ...", flush=True)
        results[name] = run(cfg, order, rows, task.num_labels)
    data = {
        "benchmark": "grad_flow", "quick": a.quick, "machine": info,
        "setup": {"task": "sst2", "data": f"{GLUE_DIR}/SST-2/train.tsv, seeded subset (data_seed 0) of "
                                          f"{len(rows)} rows, one pass in a seeded random order",
                  "steps": steps, "batch": BATCH, "max_length": MAX_LENGTH, "padding": "dynamic (longest in batch)",
                  "optimizer": f"AdamW lr={LR} constant, weight_decay={WEIGHT_DECAY} (matrices), grad clip {GRAD_CLIP}",
                  "seed": SEED, "mode": "train (dropout on)",
                  "measured": "L2 (Frobenius) norm over the whole batch of d loss / d h0, h0 = output of "
                              "bert.embeddings = hidden state entering layer 0; loss = mean cross-entropy"},
        "models": results,
    }
    write_results("grad_flow", data, render_md)


def render_md(d: dict) -> str:
    s = d["setup"]
    out = [f"# grad_flow{' (--quick)' if d['quick'] else ''}: gradient reaching layer 0's input\n",
           f"SST-2 training, {s['steps']} steps each, batch {s['batch']}, max_length {s['max_length']}, "
           f"{s['optimizer']}, same batches in the same order for both, seed {s['seed']}. "
           f"Measured: {s['measured']}.\n"]
    rows = []
    for n, r in d["models"].items():
        g, t, q, lo = (r["grad_norm_layer0_input"], r["grad_norm_last_layer_output"],
                       r["ratio_layer0_input_over_last_output"], r["train_loss"])
        first = [k for k in g if k.startswith("mean_first")][0]
        last = [k for k in g if k.startswith("mean_last")][0]
        rows.append([n, f"{r['adapter_params']:,}", f"**{g['mean']:.4g} ± {g['std']:.3g}**",
                     f"{g[first]:.4g} / {g[last]:.4g}", f"{g['min']:.3g} – {g['max']:.3g}",
                     f"{t['mean']:.4g} ± {t['std']:.3g}", f"{q['mean']:.3f}",
                     f"{lo[first]:.3f} / {lo[last]:.3f}"])
    k = first.split("_")[-1]
    out.append(md_table(["model", "adapter params", "‖dL/dh0‖ mean ± std", f"mean first {k} / last {k} steps",
                         "min – max", "‖dL/dh6‖ (last layer out) mean ± std", "mean ratio h0/h6",
                         f"train loss first {k} / last {k}"], rows))
    a, b = d["models"]["LoR2C"]["grad_norm_layer0_input"]["mean"], d["models"]["LoRA"]["grad_norm_layer0_input"]["mean"]
    out.append(f"\nLoR2C / LoRA mean gradient norm at layer 0's input: {a / b:.3f}.\n")
    return "\n".join(out)


if __name__ == "__main__":
    main()
