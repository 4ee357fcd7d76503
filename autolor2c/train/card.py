"""The model card (README.md) of an adapter folder: base model, task, method and structure, parameter
counts, scores with seeds, and how to load it. Plain text built from the folder's own JSON files."""

from __future__ import annotations

from typing import Any

from autolor2c.lor2c import LoR2CConfig

from .backbone import portable_model_name


def _structure_lines(lor2c_meta: dict[str, Any]) -> list[str]:
    cfg = lor2c_meta.get("lor2c", {})
    config = LoR2CConfig.from_dict(cfg)
    spans = config.resolved_spans(lor2c_meta.get("shape", {}).get("num_layers", 0))
    ranks = [config.bypass_rank(n) for n in range(len(spans))]
    lines = [f"- residual bypasses (hidden state entering layer i, through B·A, added to the output of layer j): "
             + (", ".join(f"layers {i}-{j} rank {r}" for (i, j), r in zip(spans, ranks)) or "none")]
    if cfg.get("share_a"):
        lines.append("- one A matrix shared by all bypasses (ShareLoR2C)")
    if cfg.get("injected"):
        lines.append(f"- LoRA injected on layers {cfg['injected']} (rank {config.lora_rank}, "
                     f"{', '.join(cfg.get('inject_targets') or [])})")
    lines.append(f"- alpha {cfg.get('alpha')}, dropout {cfg.get('dropout')}; merges {cfg.get('merge_count', 0)}, "
                 f"injections {cfg.get('inject_count', 0)} during training")
    events = lor2c_meta.get("history") or []
    if events:
        lines.append("- structural changes while training: "
                     + ", ".join(e.get("op", "?") + (f" at step {e['step']}" if e.get("step") is not None else "")
                               for e in events))
    lines.append(f"- head trained with the adapter: {', '.join(lor2c_meta.get('head_modules') or []) or 'none'}")
    return lines


def model_card(run_meta: dict[str, Any], lor2c_meta: dict[str, Any] | None,
               retrain: dict[str, Any] | None = None, title: str | None = None) -> str:
    """README.md text. ``run_meta`` is autolor2c.json, ``lor2c_meta`` lor2c_config.json (None for a PEFT
    LoRA adapter), ``retrain`` a search's retrain.json (mean, std and one score per seed) when there is one."""
    base = portable_model_name(run_meta.get("model"))
    metric = run_meta.get("primary_metric", "score")
    method = (lor2c_meta or {}).get("method", "lora") if lor2c_meta else "lora"
    lines = [f"# {title or 'LoR2C adapter'}", "",
             f"- base model: `{base}`",
             f"- task: {run_meta.get('task')} ({run_meta.get('num_labels')} label(s), max length {run_meta.get('max_length')})",
             f"- method: {'LoR2C (arXiv 2503.00572), trained with autolor2c' if method == 'lor2c' else 'LoRA (PEFT)'}"]
    if lor2c_meta:
        lines += ["", "## Structure", "", *_structure_lines(lor2c_meta), "",
                  "## Parameters", "",
                  f"- adapter: {lor2c_meta.get('adapter_params', run_meta.get('trainable_params')):,} trainable parameters",
                  f"- head: {lor2c_meta.get('head_params', 0):,} parameters (saved here too)"]
    lines += ["", "## Scores", ""]
    if retrain:
        pick = retrain.get("pick", retrain)  # a search's retrain.json: the pick first
        runs = pick.get("runs") or []
        lines.append(f"- {metric} on the dev set (chose nothing): {pick['dev_mean']:.4f} ± {pick['dev_std']:.4f} over "
                     f"{pick['seeds']} seed(s): " + ", ".join(f"seed {r['seed']} {r['dev']:.4f}" for r in runs)
                     + "; this folder holds seed 0's weights")
        lines.append(f"- {metric} on the selection split held out of the training data (chose the configuration "
                     f"and the checkpoint): {pick['selection_mean']:.4f}")
    else:
        seed = run_meta.get("seed")
        lines.append(f"- {metric}: {run_meta.get('primary_score', float('nan')):.4f}"
                     + (f" (seed {seed})" if seed is not None else ""))
    lines += ["", "## Load", "",
              "These files (`lor2c_config.json`, `lor2c_model.safetensors`, `autolor2c.json`) are LoR2C's own, not a "
              "PEFT adapter: load them with autolor2c.", "",
              "```python",
              "from transformers import AutoModelForSequenceClassification",
              "from autolor2c.lor2c import LoR2CModel",
              "",
              f"base = AutoModelForSequenceClassification.from_pretrained(\"{base}\", num_labels={run_meta.get('num_labels')})",
              "model = LoR2CModel.from_pretrained(base, \"path/to/this/folder\")  # the head's weights come from here too",
              "```", "",
              "or from the command line: `autolor2c predict --adapter path/to/this/folder --input texts.csv`.", ""]
    return "\n".join(lines)
