"""P1 + P2: time of one training step (forward + backward + AdamW step), LoR2C vs stock-PEFT LoRA with
the same adapter parameter count, and achieved FLOP/s against the machine's measured fp32 matmul peak.

    python bench/step_time.py [--quick] [--profile]

(a) LoR2C, ``read_config_file("lor2c")``: one rank-8 bypass on every layer (36,864 adapter params);
(b) LoRA, ``read_config_file("lora")``: rank 4 on query/value of all 6 layers (36,864 adapter params).
Embedded all-MiniLM-L6-v2, batch 32 x 64 tokens of fixed random ids, full attention mask, train mode
as in training (the frozen backbone's dropout at the loop's default, off; the adapters' dropout on).
Both models live in this process; steps are timed one by one in
alternating blocks (A B, B A, A B, ...) so load drift from other work on the machine hits both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from bench.common import machine_info, md_table, write_results  # noqa: E402

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from autolor2c.lor2c import LoR2CModel  # noqa: E402
from autolor2c.train import TrainArgs, adapter_param_count, attach, load_backbone, read_config_file  # noqa: E402

LR = 4e-3
WEIGHT_DECAY = 0.01
NUM_LABELS = 2


# --------------------------------------------------------------------------------------------------
# Models and one step
# --------------------------------------------------------------------------------------------------
def _proc_stat_busy() -> float:
    """Busy CPU seconds of the whole machine so far (all cores), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return float("nan")
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class CpuWatch:
    """Measures how many cores *other* processes kept busy during an interval (machine busy - ours)."""

    def __enter__(self):
        self.w0, self.c0, self.b0 = time.perf_counter(), time.process_time(), _proc_stat_busy()
        return self

    def __exit__(self, *_):
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0
        self.other_cores = max(0.0, (_proc_stat_busy() - self.b0 - self.cpu) / self.wall) if self.wall > 0 else 0.0
        return False


def wait_quiet(max_wait_s: float, threshold: float = 0.3) -> dict:
    """Wait (up to max_wait_s) for a second in which other processes use < threshold cores."""
    t0 = time.perf_counter()
    while True:
        with CpuWatch() as w:
            time.sleep(1.0)
        waited = time.perf_counter() - t0
        if w.other_cores < threshold or waited >= max_wait_s:
            return {"waited_s": round(waited, 1), "other_cores_last_s": round(w.other_cores, 2),
                    "quiet": w.other_cores < threshold}


class Runner:
    def __init__(self, name: str, config: str, batch: dict[str, torch.Tensor]):
        self.name, self.config_name = name, config
        spec, _ = read_config_file(config)
        self.spec = spec
        base = load_backbone(None, NUM_LABELS, seed=0, dropout=TrainArgs().backbone_dropout)  # as training does
        torch.manual_seed(0)
        self.model = attach(base, spec)
        self.model.train()
        params = [p for p in self.model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        # Same optimiser as autolor2c.train.loop._make_optimizer.
        self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                                      {"params": no_decay, "weight_decay": 0.0}], lr=LR)
        self.batch = batch
        self.adapter_params, self.head_params = adapter_param_count(self.model)
        self.times: list[float] = []
        self.cpu_times: list[float] = []
        self.other_cores: list[float] = []

    def step(self, phases: bool = False) -> float:
        rf = torch.profiler.record_function if phases else _null_ctx
        self.opt.zero_grad(set_to_none=True)
        with rf("forward"):
            loss = self.model(**self.batch).loss
        with rf("backward"):
            loss.backward()
        with rf("optimizer"):
            self.opt.step()
        return float(loss.detach())

    def timed_step(self) -> None:
        with CpuWatch() as w:
            self.step()
        self.times.append(w.wall)
        self.cpu_times.append(w.cpu)
        self.other_cores.append(w.other_cores)


class _null_ctx:
    def __init__(self, *_):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *_):
        return False


# --------------------------------------------------------------------------------------------------
# Peak fp32 matmul
# --------------------------------------------------------------------------------------------------
def matmul_peak(sizes=(1024, 2048), reps: int = 8) -> dict:
    out = {}
    with CpuWatch() as w:
        out.update(_matmul_peak(sizes, reps))
    out["other_cores"] = round(w.other_cores, 2)
    return out


def _matmul_peak(sizes, reps) -> dict:
    out = {}
    for n in sizes:
        a = torch.randn(n, n, dtype=torch.float32)
        b = torch.randn(n, n, dtype=torch.float32)
        for _ in range(2):
            torch.matmul(a, b)
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.matmul(a, b)
            best = min(best, time.perf_counter() - t0)
        out[str(n)] = {"best_s": best, "gflops": 2 * n ** 3 / best / 1e9}
    return out


# --------------------------------------------------------------------------------------------------
# Analytic FLOP count of one step
# --------------------------------------------------------------------------------------------------
def analytic_flops(model: torch.nn.Module, spec, B: int, L: int) -> dict:
    """Matmul FLOPs (2*m*n*k) of one step: forward, and the backward that a frozen backbone needs.

    Rules (the md file repeats them):
    * forward: every matmul of the model (Q/K/V/out projections, QK^T, P@V, FFN up/down, pooler,
      classifier) plus the adapter's two low-rank matmuls per bypass / per LoRA-adapted projection;
    * backward through a frozen Linear: only the input-gradient dX = dY W, i.e. 1x its forward FLOPs, and
      only where X needs a gradient (no weight-gradient: the weight is frozen);
    * backward through an activation x activation matmul (QK^T, P@V): a gradient for each operand that
      needs one, 1x the forward FLOPs each;
    * trainable weights (adapters, classifier): weight-gradient 1x forward, plus input-gradient 1x
      forward when the input needs a gradient;
    * a layer's input needs a gradient iff something trainable lies at or below it: with a bypass
      ending at layer 0 (LoR2C) or LoRA inside layer 0, every layer above layer 0 is back-propagated in
      full; layer 0 itself only as far as its trainable pieces need (nothing for LoR2C, whose layer-0
      bypass reads the frozen embeddings; for LoRA on Q/V: FFN, out-projection, P@V for dP and dV,
      QK^T for dQ only, no input-gradient of the Q/K/V projections).
    """
    cfg = model.config if not isinstance(model, LoR2CModel) else model.base_model.config
    d, ff, nl, C = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, NUM_LABELS
    T = B * L
    lin = lambda m, k, n: 2 * m * k * n  # noqa: E731  (m x k) @ (k x n)

    f_qkv = 3 * lin(T, d, d)
    f_out = lin(T, d, d)
    f_ffn = lin(T, d, ff) + lin(T, ff, d)
    f_scores = lin(B * L, d, L)   # summed over heads: B*H*(L x dh)@(dh x L) = 2*B*L*L*d
    f_ctx = lin(B * L, L, d)      # B*H*(L x L)@(L x dh)
    f_pool = lin(B, d, d)
    f_cls = lin(B, d, C)

    fwd = {"qkv_proj": nl * f_qkv, "attn_out_proj": nl * f_out, "ffn": nl * f_ffn,
           "attn_scores_QK": nl * f_scores, "attn_weighted_sum_PV": nl * f_ctx,
           "pooler": f_pool, "classifier": f_cls}
    bwd = {"classifier_weight_grad": f_cls, "classifier_input_grad": f_cls, "pooler_input_grad": f_pool}
    if any(p.requires_grad for n, p in model.named_parameters() if "pooler" in n):
        bwd["pooler_weight_grad"] = f_pool  # the pooler is trained with the head

    # one full activation-gradient pass through a frozen layer
    full_layer_bwd = f_qkv + f_out + f_ffn + 2 * f_scores + 2 * f_ctx

    if spec.method == "lor2c":
        lowest_out = min(b.last for b in model.bypasses)  # lowest layer whose output needs a gradient
        adapter_fwd = adapter_bwd = 0
        for b in model.bypasses:
            r = b.rank
            adapter_fwd += lin(T, d, r) + lin(T, r, d)
            # dB, d(A h), dA always; dh only if the bypass input needs a gradient
            adapter_bwd += lin(T, r, d) + lin(T, d, r) + lin(T, d, r)
            if b.first - 1 >= lowest_out:
                adapter_bwd += lin(T, r, d)
        full_layers = [k for k in range(nl) if k > lowest_out]
        partial = 0  # layer `lowest_out` has no trainable piece inside it
        fwd["lor2c_bypasses"] = adapter_fwd
        bwd["lor2c_bypass_grads"] = adapter_bwd
    else:
        lora = spec.lora
        assert sorted(lora.target_modules) == ["query", "value"], lora.target_modules
        layers = lora.layers if lora.layers is not None else list(range(nl))
        lowest = min(layers)
        r = lora.rank
        adapter_fwd = adapter_bwd = 0
        for k in layers:
            for _ in ("query", "value"):
                adapter_fwd += lin(T, d, r) + lin(T, r, d)
                adapter_bwd += lin(T, r, d) + lin(T, d, r) + lin(T, d, r)  # dB, d(Ax), dA
                if k > lowest:
                    adapter_bwd += lin(T, r, d)  # dx
        full_layers = [k for k in range(nl) if k > lowest]
        # lowest LoRA layer: FFN + out-proj input grads, P@V -> dP and dV, QK^T -> dQ only
        partial = f_ffn + f_out + 2 * f_ctx + f_scores
        fwd["lora_adapters"] = adapter_fwd
        bwd["lora_adapter_grads"] = adapter_bwd
    bwd["frozen_layers_full_input_grads"] = len(full_layers) * full_layer_bwd
    bwd["lowest_layer_partial_input_grads"] = partial

    fwd_total, bwd_total = sum(fwd.values()), sum(bwd.values())
    return {
        "forward": fwd, "backward": bwd,
        "forward_total": fwd_total, "backward_total": bwd_total, "step_total": fwd_total + bwd_total,
        "fully_backpropagated_layers": full_layers,
        # reference only: full fine-tuning convention (backward = 2x forward for every matmul)
        "full_finetune_3x_forward": 3 * fwd_total,
        "dims": {"batch": B, "seq_len": L, "tokens": T, "hidden": d, "ffn": ff, "layers": nl, "labels": C},
    }


def counted_flops(runner: Runner) -> dict:
    """Cross-check: the FLOPs torch's FlopCounterMode sees in one real step (mm/addmm/bmm/...)."""
    with FlopCounterMode(display=False) as fc:
        runner.step()
    per_op = {str(k): int(v) for k, v in fc.get_flop_counts().get("Global", {}).items()}
    return {"total": int(fc.get_total_flops()), "per_op": per_op}


# --------------------------------------------------------------------------------------------------
# Profiling
# --------------------------------------------------------------------------------------------------
MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear")


def profile_runner(runner: Runner, steps: int, top: int = 15) -> dict:
    from torch.profiler import ProfilerActivity, profile

    for _ in range(2):
        runner.step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            runner.step(phases=True)
    ka = prof.key_averages()
    events = [e for e in ka if not e.key in ("forward", "backward", "optimizer")]
    total_self = sum(e.self_cpu_time_total for e in events) or 1
    phases = {e.key: e.cpu_time_total / steps / 1e3 for e in ka if e.key in ("forward", "backward", "optimizer")}
    rows = sorted(events, key=lambda e: -e.self_cpu_time_total)
    top_ops = [{"op": e.key, "calls_per_step": e.count / steps,
                "self_ms_per_step": e.self_cpu_time_total / steps / 1e3,
                "share": e.self_cpu_time_total / total_self} for e in rows[:top]]
    mm_self = sum(e.self_cpu_time_total for e in events if e.key in ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"))
    return {"steps": steps, "phase_ms_per_step": phases, "top_ops": top_ops,
            "self_ms_per_step_total": total_self / steps / 1e3,
            "matmul_kernel_self_ms_per_step": mm_self / steps / 1e3,
            "matmul_kernel_share": mm_self / total_self}


# --------------------------------------------------------------------------------------------------
QUIET = 0.3  # a step is "quiet" when other processes kept fewer than this many cores busy during it


def _stats(xs: list[float]) -> dict:
    return {"n": len(xs), "median": statistics.median(xs), "mean": statistics.mean(xs), "min": min(xs),
            "max": max(xs), "stdev": statistics.stdev(xs) if len(xs) > 1 else 0.0} if xs else {"n": 0}


def measure_phase(runners: list[Runner], threads: int, warmup: int, block: int, blocks: int, peak_reps: int,
                  wait_s: float) -> dict:
    """Interleaved timing of all runners with ``threads`` torch threads, and the matmul peak with as many."""
    torch.set_num_threads(threads)
    for r in runners:
        r.times, r.cpu_times, r.other_cores = [], [], []
    lor2c, lora = runners
    peaks = [("start", matmul_peak(reps=peak_reps))]
    print(f"[{threads} thread(s)] peak (start): {peaks[0][1]}", flush=True)
    for r in runners:
        for _ in range(warmup):
            r.step()
    block_ratios, waits = [], []
    for bi in range(blocks):
        if wait_s > 0:
            waits.append(wait_quiet(wait_s))
        order = runners if bi % 2 == 0 else runners[::-1]
        for r in order:
            for _ in range(block):
                r.timed_step()
        block_ratios.append(statistics.median(lor2c.times[-block:]) / statistics.median(lora.times[-block:]))
        print(f"[{threads} thread(s)] block {bi + 1}/{blocks}: " + ", ".join(
            f"{r.name} {statistics.median(r.times[-block:]):.3f}s (others {statistics.mean(r.other_cores[-block:]):.2f} cores)"
            for r in order), flush=True)
        if bi == blocks // 2 - 1:
            peaks.append(("middle", matmul_peak(reps=peak_reps)))
    peaks.append(("end", matmul_peak(reps=peak_reps)))
    peak_gflops = max(v["gflops"] for _, p in peaks for k, v in p.items() if k != "other_cores")

    models = {}
    for r in runners:
        quiet = [t for t, o in zip(r.times, r.other_cores) if o < QUIET]
        st, sq = _stats(r.times), _stats(quiet)
        fl = r.flops["step_total"]
        models[r.name] = {
            "median_s": st["median"], "all_steps": st, "quiet_steps": sq,
            "median_other_cores": statistics.median(r.other_cores),
            "cpu_per_wall": statistics.median(c / t for c, t in zip(r.cpu_times, r.times)),
            "step_times_s": r.times, "step_other_cores": r.other_cores, "step_cpu_s": r.cpu_times,
            "achieved_gflops": fl / st["median"] / 1e9, "utilisation": fl / st["median"] / 1e9 / peak_gflops,
            "achieved_gflops_quiet_median": fl / sq["median"] / 1e9 if sq["n"] else None,
            "utilisation_quiet_median": fl / sq["median"] / 1e9 / peak_gflops if sq["n"] else None,
            "achieved_gflops_fastest_step": fl / st["min"] / 1e9,
            "utilisation_fastest_step": fl / st["min"] / 1e9 / peak_gflops,
        }
    nq = min(m["quiet_steps"]["n"] for m in models.values())
    return {
        "threads": threads, "models": models,
        "ratio_lor2c_over_lora": models["LoR2C"]["median_s"] / models["LoRA"]["median_s"],
        "ratio_median_of_block_pairs": statistics.median(block_ratios), "block_ratios": block_ratios,
        "ratio_quiet_steps": (models["LoR2C"]["quiet_steps"]["median"] / models["LoRA"]["quiet_steps"]["median"]
                              if nq >= 3 else None),
        "waits_for_quiet": waits,
        "peak_measurements": {k: v for k, v in peaks}, "peak_gflops": peak_gflops,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a short smoke run")
    ap.add_argument("--profile", action="store_true", help="profile even when the targets are met")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--wait-quiet", type=float, default=0.0,
                    help="before each block, wait up to this many seconds for a second in which other "
                         "processes use < 0.3 cores (0: do not wait)")
    ap.add_argument("--render-only", action="store_true",
                    help="re-render results/step_time.md from results/step_time.json (no measuring)")
    ap.add_argument("--no-single-thread", action="store_true",
                    help="skip the supplementary 1-thread phase (run only with torch.get_num_threads() threads)")
    a = ap.parse_args()
    if a.render_only:
        import json

        from bench.common import RESULTS

        d = json.loads((RESULTS / "step_time.json").read_text())
        md = render_md(d)
        (RESULTS / "step_time.md").write_text(md)
        print(md)
        return

    warmup, block, blocks, prof_steps, peak_reps = (2, 2, 2, 2, 3) if a.quick else (5, 2, 20, 3, 8)
    B, L = a.batch, a.seq_len
    info = machine_info()
    default_threads = torch.get_num_threads()
    print(f"threads={default_threads} loadavg={info['loadavg_at_start']}", flush=True)

    g = torch.Generator().manual_seed(1234)
    from autolor2c.train import load_tokenizer

    vocab = len(load_tokenizer(None))
    batch = {
        "input_ids": torch.randint(1000, vocab, (B, L), generator=g),
        "attention_mask": torch.ones(B, L, dtype=torch.long),
        "labels": torch.randint(0, NUM_LABELS, (B,), generator=g),
    }
    runners = [Runner("LoR2C", "lor2c", batch), Runner("LoRA", "lora", batch)]
    assert runners[0].adapter_params == runners[1].adapter_params, [r.adapter_params for r in runners]
    for r in runners:
        r.flops = analytic_flops(r.model, r.spec, B, L)

    thread_counts = [default_threads] + ([1] if default_threads > 1 and not a.no_single_thread else [])
    phases = [measure_phase(runners, t, warmup, block, blocks, peak_reps, a.wait_quiet) for t in thread_counts]
    torch.set_num_threads(default_threads)
    main_phase = phases[0]

    models = {}
    for r in runners:
        models[r.name] = {"config": r.config_name, "spec": r.spec.to_dict(), "adapter_params": r.adapter_params,
                          "head_params": r.head_params, "warmup_steps": warmup, "measured_steps": block * blocks,
                          "flops_analytic": r.flops, "flops_counted_by_torch": counted_flops(r),
                          **{k: v for k, v in main_phase["models"][r.name].items()}}
    ratio = main_phase["ratio_lor2c_over_lora"]
    util = {n: m["utilisation"] for n, m in models.items()}

    prof = None
    if a.profile or ratio > 1.0 or min(util.values()) < 0.5:
        prof = {}
        for t in thread_counts:
            torch.set_num_threads(t)
            for r in runners:
                wq = wait_quiet(0 if a.quick else 60)
                with CpuWatch() as w:
                    res = profile_runner(r, prof_steps)
                res["wait_for_quiet"] = wq
                res["other_cores_during_profile"] = round(w.other_cores, 2)
                res["threads"] = t
                prof[f"{r.name} ({t} thread{'s' if t > 1 else ''})"] = res
        torch.set_num_threads(default_threads)

    data = {
        "benchmark": "step_time",
        "quick": a.quick,
        "setup": {"batch": B, "seq_len": L, "token_ids": "fixed random (seed 1234), full attention mask",
                  "mode": f"train (backbone dropout {TrainArgs().backbone_dropout}, the loop's default; adapter dropout on)",
                  "optimizer": f"AdamW lr={LR} wd={WEIGHT_DECAY}",
                  "step": "zero_grad + forward + backward + AdamW step (no grad clipping)",
                  "warmup_steps_each": warmup, "block_size": block, "blocks_each": blocks,
                  "measured_steps_each": block * blocks, "interleaving": "AB, BA, AB, ... blocks",
                  "threads_main": default_threads, "thread_counts_measured": thread_counts,
                  "wait_quiet_s": a.wait_quiet, "quiet_threshold_other_cores": QUIET,
                  "peak": "torch.matmul of n x n fp32, n in (1024, 2048), best of reps, at start/middle/end, "
                          "with the phase's thread count"},
        "machine": info,
        # the main numbers: the default thread count (torch.get_num_threads())
        "models": models,
        "ratio_lor2c_over_lora": ratio,
        "ratio_median_of_block_pairs": main_phase["ratio_median_of_block_pairs"],
        "ratio_quiet_steps": main_phase["ratio_quiet_steps"],
        "peak_gflops": main_phase["peak_gflops"],
        "targets": {"ratio<=1.0": ratio <= 1.0, "utilisation>=0.5": {n: u >= 0.5 for n, u in util.items()}},
        "phases": phases,
        "profile": prof,
    }
    write_results("step_time", data, render_md)


def fmt_g(x: float) -> str:
    return f"{x / 1e9:.2f}"


def render_phase(ph: dict, flops: dict) -> list[str]:
    t = ph["threads"]
    lines = [f"\n### {t} thread{'s' if t > 1 else ''}\n"]
    rows = []
    for n, r in ph["models"].items():
        a, q = r["all_steps"], r["quiet_steps"]
        rows.append([n, f"**{a['median']:.4f}**", f"{a['mean']:.4f}", f"{a['min']:.4f}", f"{a['max']:.4f}",
                     f"{r['median_other_cores']:.2f}", f"{r['cpu_per_wall']:.2f}", f"{q['n']}",
                     f"{q['median']:.4f}" if q["n"] else "-"])
    lines.append(md_table(["model", "median s/step (all)", "mean", "min", "max", "other procs' cores (median)",
                           "our CPU s / wall s", "quiet steps", "median s/step (quiet)"], rows))
    for n, r in ph["models"].items():
        busy = [t for t, o in zip(r["step_times_s"], r["step_other_cores"]) if o >= 0.7]
        q = r["quiet_steps"]
        if busy and q["n"]:
            lines.append(f"\n{n}: {len(busy)} steps ran while other processes kept >= 0.7 cores busy; their median "
                         f"{statistics.median(busy):.3f} s is {statistics.median(busy) / q['median']:.1f}x the quiet median.\n")
    rq = ph["ratio_quiet_steps"]
    lines.append(f"\nRatio LoR2C / LoRA: **{ph['ratio_lor2c_over_lora']:.3f}** (medians of all steps); "
                 f"{ph['ratio_median_of_block_pairs']:.3f} (median of per-block-pair ratios); "
                 f"{f'{rq:.3f}' if rq is not None else 'n/a (too few quiet steps)'} (quiet-step medians).\n")
    pk = ph["peak_measurements"]
    lines.append("\nfp32 matmul peak with the same threads (GFLOP/s): " + "; ".join(
        f"{when}: " + ", ".join(f"n={n}: {v['gflops']:.1f}" for n, v in p.items() if n != "other_cores")
        + f" (others used {p['other_cores']} cores)" for when, p in pk.items())
        + f". **Peak = {ph['peak_gflops']:.1f} GFLOP/s** (the best of these).\n\n")
    rows = []
    for n, r in ph["models"].items():
        uq = r["utilisation_quiet_median"]
        rows.append([n, fmt_g(flops[n]), f"{r['achieved_gflops']:.1f}", f"**{r['utilisation']:.3f}**",
                     f"{r['achieved_gflops_quiet_median']:.1f} / {uq:.3f}" if uq is not None else "-",
                     f"{r['achieved_gflops_fastest_step']:.1f} / {r['utilisation_fastest_step']:.3f}"])
    lines.append(md_table(["model", "step GFLOP", "GFLOP/s (median step)", "utilisation (median step)",
                           "GFLOP/s / util. (quiet median)", "GFLOP/s / util. (fastest step)"], rows))
    return lines


def render_md(d: dict) -> str:
    m = d["models"]
    s = d["setup"]
    mi = d["machine"]
    lines = [f"# step_time{' (--quick)' if d['quick'] else ''}: one training step, LoR2C vs LoRA\n",
             f"Embedded all-MiniLM-L6-v2 (BERT, 6 layers, d=384), batch {s['batch']} x {s['seq_len']} tokens, "
             f"{s['mode']}, {s['step']}, {s['optimizer']}. {s['warmup_steps_each']} warm-up steps each, then "
             f"{s['measured_steps_each']} measured steps each in {s['blocks_each']} interleaved blocks of {s['block_size']} "
             f"(A B, B A, ...). torch {mi['torch']}, CPU: {mi['cpu']}, {mi['cores_visible']} cores; load average at "
             f"start {[round(x, 2) for x in mi['loadavg_at_start']]}, at end "
             f"{[round(x, 2) for x in mi.get('loadavg_at_end') or []]}.\n",
             "The machine is shared with other work: for every step the script also measures how many cores *other* "
             f"processes kept busy meanwhile (/proc/stat minus this process); steps where that was < {QUIET} cores "
             "are \"quiet\". The main numbers use torch's default thread count "
             f"({s['threads_main']}); a second phase repeats everything with 1 thread (and a 1-thread peak), which "
             "is meant to be less sensitive to another process holding a core (2 OpenMP threads on 2 cores stall "
             "whenever one of them is descheduled).\n",
             "## Summary (main phase, {} threads)\n".format(s["threads_main"])]
    rows = []
    for n, r in m.items():
        rows.append([n, r["config"], f"{r['adapter_params']:,}", f"**{r['median_s']:.4f}**",
                     fmt_g(r["flops_analytic"]["step_total"]), fmt_g(r["flops_counted_by_torch"]["total"]),
                     f"{r['achieved_gflops']:.1f}", f"{d['peak_gflops']:.1f}", f"**{r['utilisation']:.3f}**"])
    lines.append(md_table(["model", "config", "adapter params", "P1 median s/step", "step GFLOP (analytic)",
                           "step GFLOP (torch FlopCounterMode)", "achieved GFLOP/s", "peak GFLOP/s",
                           "P2 utilisation"], rows))
    lines.append(f"\n**P1 ratio LoR2C / LoRA = {d['ratio_lor2c_over_lora']:.3f}** (target <= 1.0: "
                 f"{'met' if d['targets']['ratio<=1.0'] else 'MISSED'}). P2 utilisation target >= 0.5: " + ", ".join(
                     f"{n} {'met' if ok else 'MISSED'}" for n, ok in d["targets"]["utilisation>=0.5"].items()) + ".\n")
    lines.append("\n## Per phase\n")
    flops = {n: r["flops_analytic"]["step_total"] for n, r in m.items()}
    for ph in d["phases"]:
        lines += render_phase(ph, flops)
    lines.append("\n## FLOPs\n")
    rows = [[n, fmt_g(r["flops_analytic"]["forward_total"]), fmt_g(r["flops_analytic"]["backward_total"]),
             fmt_g(r["flops_analytic"]["step_total"]), fmt_g(r["flops_counted_by_torch"]["total"]),
             fmt_g(r["flops_analytic"]["full_finetune_3x_forward"])] for n, r in m.items()]
    lines.append(md_table(["model", "forward GFLOP", "backward GFLOP (frozen-aware)", "step GFLOP",
                           "torch FlopCounterMode GFLOP", "for reference: 3x forward (full fine-tuning rule)"], rows))
    lines.append("""
### How the FLOPs are counted

Only matrix multiplies, 2*m*n*k each (elementwise work such as softmax, GELU, LayerNorm, dropout, the
AdamW update is not counted). With T = batch*seq tokens, d = 384, ffn = 1536, per layer:

* forward: Q, K, V and output projections 4 * 2*T*d*d; FFN 2 * 2*T*d*ffn; attention scores QK^T
  2*B*L*L*d and weighted sum P@V 2*B*L*L*d (summed over the 12 heads); plus pooler 2*B*d*d and
  classifier 2*B*d*2 once; plus the adapter: 2*T*d*r + 2*T*r*d per bypass (LoR2C, r = 8, 6 bypasses)
  or per LoRA-adapted projection (LoRA, r = 4, 12 projections) - the same FLOPs for both.
* backward, only what a frozen backbone needs: a frozen Linear costs its input-gradient only
  (1x its forward FLOPs; no weight-gradient), and only where its input needs a gradient; QK^T and
  P@V cost 1x forward per operand that needs a gradient (usually both: 2x); trainable adapter and
  classifier weights cost a weight-gradient (1x) plus an input-gradient (1x) where the input needs one.
* where gradients flow: both adapters have a trainable piece in layer 0, so layers 1-5 are
  back-propagated in full. In layer 0, LoR2C needs nothing (its layer-0 bypass reads the frozen
  embeddings and adds to layer 0's output), while LoRA on Q/V needs the FFN and out-projection
  input-gradients, dP and dV of P@V, and dQ of QK^T (K is frozen and its input needs no gradient).
  So LoR2C's step is smaller by about one layer's backward.
* the pooler is trained with the head (the default since the head ablation): its input-gradient
  2*B*d*d plus its weight-gradient 2*B*d*d.

The torch FlopCounterMode column counts the matmuls autograd actually ran in one real step (mm, addmm,
bmm); it agrees with the analytic count when the rules above describe what autograd does.
"""
                 )
    for n, r in m.items():
        per_op = r["flops_counted_by_torch"]["per_op"]
        if not any("bmm" in k for k in per_op):
            gap = r["flops_analytic"]["step_total"] - r["flops_counted_by_torch"]["total"]
            lines.append(f"\n{n}: the counter saw no bmm: with dropout off, BERT's attention runs in SDPA's fused CPU "
                         f"kernel, which FlopCounterMode does not count; the gap, {fmt_g(gap)} GFLOP, is the analytic "
                         f"QK^T and P@V work (forward and backward).\n")
    for n, r in m.items():
        f = r["flops_analytic"]
        lines.append(f"\n{n} analytic breakdown (GFLOP): forward " + ", ".join(
            f"{k} {fmt_g(v)}" for k, v in f["forward"].items()) + "; backward " + ", ".join(
            f"{k} {fmt_g(v)}" for k, v in f["backward"].items()) + ".\n")
    if d["profile"]:
        lines.append("\n## Where the time goes (torch.profiler, self CPU time)\n")
        peaks = {ph["threads"]: ph["peak_gflops"] for ph in d["phases"]}
        for n, p in d["profile"].items():
            ph = p["phase_ms_per_step"]
            fl = m[n.split(" (")[0]]["flops_analytic"]["step_total"]
            mm_gflops = fl / p["matmul_kernel_self_ms_per_step"] / 1e6
            lines.append(f"\n**{n}**, {p['steps']} profiled steps (other processes used "
                         f"{p['other_cores_during_profile']} cores meanwhile): forward {ph.get('forward', 0):.1f} ms, backward "
                         f"{ph.get('backward', 0):.1f} ms, optimizer {ph.get('optimizer', 0):.1f} ms per step; "
                         f"matmul kernels (mm/addmm/bmm) {p['matmul_kernel_self_ms_per_step']:.1f} ms/step = "
                         f"{100 * p['matmul_kernel_share']:.1f}% of self CPU time, so the matmul kernels themselves ran at "
                         f"{mm_gflops:.1f} GFLOP/s ({mm_gflops / peaks[p['threads']]:.2f} of the {p['threads']}-thread peak); "
                         f"dropout masks (aten::bernoulli_) {sum(o['self_ms_per_step'] for o in p['top_ops'] if o['op'] == 'aten::bernoulli_'):.1f} ms/step.\n\n")
            name = n.split(" (")[0]
            phase = [x for x in d["phases"] if x["threads"] == p["threads"]][0]
            med_s = phase["models"][name]["median_s"]
            bern_s = sum(o["self_ms_per_step"] for o in p["top_ops"] if o["op"] == "aten::bernoulli_") / 1e3
            if bern_s > 0 and med_s > bern_s:
                lines.append(f"Without the dropout-mask time the measured median step ({med_s:.3f} s) would be "
                             f"{med_s - bern_s:.3f} s, i.e. {fl / (med_s - bern_s) / 1e9:.1f} GFLOP/s = utilisation "
                             f"{fl / (med_s - bern_s) / 1e9 / peaks[p['threads']]:.2f} (an estimate from the profile).\n\n")
            lines.append(md_table(["op", "calls/step", "self ms/step", "share"],
                                  [[o["op"], f"{o['calls_per_step']:.0f}", f"{o['self_ms_per_step']:.2f}",
                                    f"{100 * o['share']:.1f}%"] for o in p["top_ops"]]))
    if d["profile"]:
        bern = {}
        for n, p in d["profile"].items():
            b = sum(o["self_ms_per_step"] for o in p["top_ops"] if o["op"] == "aten::bernoulli_")
            bern.setdefault(n.split(" (")[0], {})[p["threads"]] = b
        for n, by_t in bern.items():
            if len(by_t) > 1:
                lines.append(f"\n{n}: dropout-mask generation (aten::bernoulli_) took " + ", ".join(
                    f"{v:.1f} ms/step with {t} thread(s)" for t, v in sorted(by_t.items(), reverse=True))
                    + (" - about the same, i.e. it does not use the extra thread(s).\n"
                       if max(by_t.values()) < 1.2 * min(by_t.values()) else ".\n"))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
