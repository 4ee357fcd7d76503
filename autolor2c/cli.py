"""The command line: parse arguments, call the library, turn bad input into one line and exit code 2."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from autolor2c.errors import UserError

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's own code), no usage dump
        raise UserError(f"{self.prog}: {message}")


# --------------------------------------------------------------------------------------------------
# value checkers: each names the flag and the bad value
# --------------------------------------------------------------------------------------------------
def _int_at_least(low: int, flag: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return v
    return parse


def _float_positive(flag: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if not (v > 0) or v != v or v == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return v
    return parse


def _add_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="GLUE task (cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte, wnli) or 'custom'")
    p.add_argument("--data-dir", default=None, help="GLUE distribution layout (DIR/SST-2/train.tsv ...); "
                   "default $AUTOLOR2C_DATA_DIR, else the Hugging Face hub")
    p.add_argument("--train-file", default=None, help="custom task: training file (csv/tsv/json/jsonl/parquet)")
    p.add_argument("--validation-file", default=None, help="custom task: validation file")
    p.add_argument("--text-columns", default=None, help="custom task: comma-separated text column(s)")
    p.add_argument("--label-column", default="label", help="custom task: label column")
    p.add_argument("--regression", action="store_true", help="custom task: the label is a number")
    p.add_argument("--model", default=None, help="hub id or local folder (default: the embedded all-MiniLM-L6-v2)")


def _task_from_args(a: argparse.Namespace):
    from autolor2c.tasks import custom_task, get_task

    if a.task == "custom":
        if not (a.train_file and a.validation_file and a.text_columns):
            raise UserError("--task custom needs --train-file, --validation-file and --text-columns")
        cols = [c.strip() for c in a.text_columns.split(",") if c.strip()]
        return custom_task(a.train_file, a.validation_file, cols, label_column=a.label_column, regression=a.regression)
    if a.train_file or a.validation_file:
        raise UserError(f"--train-file/--validation-file are for --task custom, not --task {a.task}")
    return get_task(a.task)


# --------------------------------------------------------------------------------------------------
# train / predict
# --------------------------------------------------------------------------------------------------
def cmd_train(a: argparse.Namespace) -> int:
    from autolor2c.train import TrainArgs, read_config_file, train

    task = _task_from_args(a)
    spec, overrides = read_config_file(a.config)
    settings = {**_defaults_for(task.name), **overrides}
    for flag in ("epochs", "learning_rate", "batch_size", "max_length", "max_train_samples", "max_eval_samples",
                 "seed", "eval_every"):
        v = getattr(a, flag)
        if v is not None:
            settings[flag] = v
    args = TrainArgs.from_dict(settings)
    out = Path(a.out) if a.out else Path("runs") / f"{task.name}-{Path(a.config).stem}-s{args.seed}"
    result = train(task, spec, args, model_name=a.model, data_dir=a.data_dir, out_dir=out)
    _print_summary(result, out)
    return 0


def _defaults_for(task_name: str) -> dict[str, Any]:
    """Defaults sized for a 2-core CPU with the embedded model (see README: measured)."""
    return {"epochs": 1.0, "learning_rate": 4e-3, "batch_size": 32, "max_length": 128}


def _print_summary(result: dict[str, Any], out: Path) -> None:
    hist = ", ".join(f"{e['op']}@{e['step']}" for e in result["history"]) or "none"
    print(f"{result['task']} {result['method']}: {result['primary_metric']} = {result['primary_score']:.4f} | "
          f"adapter params {result['trainable_params']:,} (+ head {result['head_params']:,}) | "
          f"{result['steps']} steps in {result['wall_time_s']:.1f}s | structural changes: {hist}")
    print(f"wrote {out / 'metrics.json'} and {out / 'adapter'}")


def cmd_predict(a: argparse.Namespace) -> int:
    import numpy as np

    from autolor2c.tasks import TaskSpec, compute_metrics, encode_task, get_task, load_task_data, resolve_data_dir
    from autolor2c.train import Batches, load_adapter, load_backbone, load_tokenizer, predict_logits, read_meta
    from autolor2c.train.loop import pick_device

    meta = read_meta(a.adapter)
    task = TaskSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["task_spec"].items()}) \
        if meta.get("task_spec") else get_task(meta["task"])
    if a.task and get_task(a.task).name != task.name:
        raise UserError(f"--task {a.task}: the adapter was trained for {task.name}")
    tokenizer = load_tokenizer(meta.get("model"))
    base = load_backbone(meta.get("model"), meta["num_labels"], task.is_regression)
    model = load_adapter(base, a.adapter)
    device = pick_device("auto")
    model.to(device).eval()
    if a.text:
        import torch

        enc = tokenizer([a.text] if isinstance(a.text, str) else a.text, truncation=True,
                        max_length=meta.get("max_length", 128), return_tensors="pt", padding=True)
        with torch.no_grad():
            logits = model(**{k: v.to(device) for k, v in enc.items()}).logits.float().cpu().numpy()
        for text, row in zip([a.text], logits):
            if task.is_regression:
                print(json.dumps({"text": text, "score": float(row[0])}))
            else:
                probs = np.exp(row - row.max())
                probs /= probs.sum()
                label = int(row.argmax())
                name = task.label_names[label] if task.label_names and label < len(task.label_names) else label
                print(json.dumps({"text": text, "label": name, "probability": round(float(probs[label]), 4)}))
        return 0
    splits = load_task_data(task, data_dir=resolve_data_dir(a.data_dir), max_eval_samples=a.max_eval_samples,
                            max_train_samples=1)
    enc = encode_task(task, splits, tokenizer, max_length=meta.get("max_length", 128))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    logits, labels = predict_logits(model, Batches(enc["validation"], pad, task.is_regression), device)
    scores = compute_metrics(task, logits, labels)
    print(json.dumps({"task": task.name, "n": len(labels), **scores,
                      "primary_score": scores[task.primary_metric], "trained_score": meta.get("primary_score")}))
    return 0


# --------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="autolor2c", description="AutoPEFT for LoR2C: search low-rank residual bypasses under a budget")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, required=True)

    t = sub.add_parser("train", help="train one configuration and write metrics.json + the adapter")
    _add_data_flags(t)
    t.add_argument("--config", required=True, help="YAML/JSON file, or a built-in: lor2c, sharelor2c, mergelor2c, "
                   "injectlor2c, imlor2c, lora")
    t.add_argument("--epochs", type=_float_positive("--epochs"))
    t.add_argument("--learning-rate", "--lr", dest="learning_rate", type=_float_positive("--learning-rate"))
    t.add_argument("--batch-size", type=_int_at_least(1, "--batch-size"))
    t.add_argument("--max-length", type=_int_at_least(8, "--max-length"))
    t.add_argument("--max-train-samples", type=_int_at_least(1, "--max-train-samples"))
    t.add_argument("--max-eval-samples", type=_int_at_least(1, "--max-eval-samples"))
    t.add_argument("--eval-every", type=_int_at_least(1, "--eval-every"), help="steps between evaluations")
    t.add_argument("--seed", type=_int_at_least(0, "--seed"))
    t.add_argument("--out", default=None, help="output folder (default runs/<task>-<config>-s<seed>)")
    t.set_defaults(func=cmd_train)

    p = sub.add_parser("predict", help="predict with a saved adapter: score the dev set, or label --text")
    p.add_argument("--adapter", required=True)
    p.add_argument("--task", default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--text", default=None)
    p.add_argument("--max-eval-samples", type=_int_at_least(1, "--max-eval-samples"))
    p.set_defaults(func=cmd_predict)

    try:
        from autolor2c.search.cli import add_search_commands
    except ImportError:
        pass
    else:
        add_search_commands(sub, _Parser, _int_at_least, _float_positive, _add_data_flags)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"autolor2c: error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, OSError) as e:
        # library validation errors (ConfigError, AdapterLoadError, LayerStackError) are bad input too
        from autolor2c.lor2c import AdapterLoadError, ConfigError, LayerStackError

        if isinstance(e, (ConfigError, AdapterLoadError, LayerStackError, FileNotFoundError)):
            print(f"autolor2c: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise
    except KeyboardInterrupt:
        print("autolor2c: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
