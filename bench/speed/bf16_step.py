"""bf16 autocast vs fp32 on this CPU: time of one training step (forward + backward + AdamW step) of the
built-in `lor2c` on the embedded all-MiniLM-L6-v2, batch 32, one thread, at sequence lengths 16/32/64/128.

    python -m bench.speed.bf16_step [--steps 25] [--warmup 5]

Batches are real rows of SST-2 and STS-B training data: at length L the 32 rows whose tokenisation is
closest to L from above (truncated to L; where too few rows are that long, the longest, padded to L). Each
precision has its own model (same seed) and optimiser; steps alternate fp32/bf16, the order swapped every
step, so load drift from other work on the machine hits both. Warm-up steps, then the median of the timed
ones. The step is the loop's own: ``_autocast(device, precision)`` around the forward and the loss,
gradient clipping, AdamW with the loop's parameter groups. Quality at bf16 is not measured here.
"""

from __future__ import annotations

import argparse
import statistics
import time

from bench.common import GLUE_DIR, machine_info, md_table, write_results  # noqa: E402

import torch  # noqa: E402

from autolor2c.precision import cpu_has_bf16  # noqa: E402
from autolor2c.tasks import get_task, load_task_data  # noqa: E402
from autolor2c.train import TrainArgs, attach, load_backbone, load_tokenizer, read_config_file  # noqa: E402
from autolor2c.train.loop import _autocast, _make_optimizer  # noqa: E402

LENGTHS = (16, 32, 64, 128)
BATCH = 32
TASKS = ("sst2", "stsb")


def real_batch(task_name: str, tokenizer, length: int) -> tuple[dict[str, torch.Tensor], float]:
    """A batch of 32 real rows at width ``length``, and the share of its positions that are real tokens."""
    task = get_task(task_name)
    rows = load_task_data(task, data_dir=GLUE_DIR, max_train_samples=4000)["train"]
    texts = [tuple(rows[c][i] for c in task.text_columns) for i in range(len(rows))]
    lens = [len(tokenizer(*t, truncation=False)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: (lens[i] < length, abs(lens[i] - length)))[:BATCH]
    enc = tokenizer(*zip(*[texts[i] for i in order]), truncation=True, max_length=length, padding="max_length",
                    return_tensors="pt")
    labels = torch.tensor([rows["label"][i] for i in order],
                          dtype=torch.float32 if task.is_regression else torch.long)
    return {**enc, "labels": labels}, float(enc["attention_mask"].float().mean())


class Arm:
    def __init__(self, precision: str, task_name: str, batch: dict[str, torch.Tensor]):
        task = get_task(task_name)
        spec, _ = read_config_file("lor2c")
        args = TrainArgs()
        base = load_backbone(None, task.num_labels, task.is_regression, seed=0, dropout=args.backbone_dropout)
        torch.manual_seed(0)
        self.model = attach(base, spec)
        self.model.train()
        self.opt = _make_optimizer(self.model, args.learning_rate, args.weight_decay)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.precision, self.batch, self.grad_clip = precision, batch, args.grad_clip
        self.times: list[float] = []
        self.losses: list[float] = []

    def step(self, timed: bool) -> None:
        t0 = time.perf_counter()
        with _autocast(torch.device("cpu"), self.precision):
            loss = self.model(**self.batch).loss
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trainable, self.grad_clip)
        self.opt.step()
        if timed:
            self.times.append(time.perf_counter() - t0)
            self.losses.append(float(loss.detach()))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--warmup", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    if not cpu_has_bf16():
        raise SystemExit("this CPU has no native bf16: nothing to measure")
    tokenizer = load_tokenizer(None)
    data = {"machine": machine_info(), "batch": BATCH, "threads": 1, "steps": a.steps, "warmup": a.warmup,
            "config": "lor2c", "rows": []}
    for task_name in TASKS:
        for length in LENGTHS:
            batch, fill = real_batch(task_name, tokenizer, length)
            arms = [Arm("fp32", task_name, batch), Arm("bf16", task_name, batch)]
            for i in range(a.warmup + a.steps):
                for arm in (arms if i % 2 == 0 else arms[::-1]):
                    arm.step(timed=i >= a.warmup)
            fp32, bf16 = (statistics.median(arm.times) for arm in arms)
            row = {"task": task_name, "length": length, "real_token_share": round(fill, 3),
                   "fp32_median_s": round(fp32, 4), "bf16_median_s": round(bf16, 4),
                   "bf16_over_fp32": round(bf16 / fp32, 3),
                   "last_loss": {arm.precision: round(arm.losses[-1], 4) for arm in arms}}
            print(row, flush=True)
            data["rows"].append(row)
    ratios = [r["bf16_over_fp32"] for r in data["rows"]]
    data["bf16_over_fp32_geomean"] = round(statistics.geometric_mean(ratios), 3)
    write_results("bf16_step", data, render)


def render(d: dict) -> str:
    m = d["machine"]
    rows = [[r["task"], r["length"], r["real_token_share"], r["fp32_median_s"], r["bf16_median_s"],
             r["bf16_over_fp32"]] for r in d["rows"]]
    return (f"# bf16 autocast vs fp32: one training step on CPU (`bench/speed/bf16_step.py`)\n\n"
            f"Built-in `lor2c` on the embedded MiniLM, batch {d['batch']} of real rows, 1 thread, forward + backward + "
            f"AdamW; median of {d['steps']} steps after {d['warmup']} warm-up, the precisions interleaved.\n"
            f"Machine: {m['cpu']}, torch {m['torch']}, load {m['loadavg_at_start']} at start, "
            f"{m['loadavg_at_end']} at end.\n\n"
            + md_table(["task", "length", "real-token share", "fp32 s/step", "bf16 s/step", "bf16 / fp32"], rows)
            + f"\nGeometric mean of bf16 / fp32: **{d['bf16_over_fp32_geomean']}**. Step time only: quality at bf16 "
              "(3 seeds x 2 tasks of full runs) is not measured, so fp32 stays the default.\n")


if __name__ == "__main__":
    main()
