"""Predictions for a user's file: read csv/tsv/json/jsonl/parquet with the task's text columns, write each
row's label name and id (or value, for regression) and class probabilities, and score the file when it has
labels."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autolor2c.errors import UserError
from autolor2c.tasks import TaskSpec, compute_metrics
from autolor2c.tasks.data import read_table
from autolor2c.tasks.registry import CUSTOM_FORMATS

PREDICTION_COLUMN = "prediction"
PREDICTION_ID_COLUMN = "prediction_id"  # the label's id, as GLUE's 0/1 label columns hold it


def default_output(input_path: Path) -> Path:
    return input_path.with_name(f"{input_path.stem}.predictions.jsonl")


def _check_output(path: Path) -> str:
    kind = CUSTOM_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"use one of {', '.join(CUSTOM_FORMATS)}", param="output", value=str(path))
    if not path.parent.is_dir():
        raise UserError(f"folder {path.parent} does not exist", param="output", value=str(path))
    return kind


def _label_ids(task: TaskSpec, raw: list[Any], path: Path) -> np.ndarray | None:
    """The file's labels as the model's ids (or floats), or None when any row has no label."""
    if any(v is None or (isinstance(v, float) and math.isnan(v)) or str(v).strip() == "" for v in raw):
        return None
    if task.is_regression:
        try:
            return np.asarray([float(v) for v in raw], dtype=np.float32)
        except ValueError as e:
            raise UserError(f"column {task.label_column!r} of {path} is not numeric ({e})") from None
    names = list(task.label_names or [str(i) for i in range(task.num_labels)])
    ids = {**{str(i): i for i in range(task.num_labels)}, **{n: i for i, n in enumerate(names)}}
    out = []
    for row, v in enumerate(raw):
        text = str(int(v)) if isinstance(v, float) and v.is_integer() else str(v).strip()
        if text not in ids:
            raise UserError(f"label {v!r} in column {task.label_column!r} of {path} (row {row + 1}) is not one of "
                            f"the task's labels ({', '.join(names)})")
        out.append(ids[text])
    return np.asarray(out)


def read_input(task: TaskSpec, input_path: Path) -> tuple[Any, np.ndarray | None]:
    """The user's rows (checked: readable, the task's text columns, not empty) and their labels when every
    row has one. Done before the model loads, so a bad file is reported at once."""
    df = read_table(input_path, task.text_columns)
    if len(df) == 0:
        raise UserError(f"no rows in {input_path}")
    labels = _label_ids(task, df[task.label_column].tolist(), input_path) if task.label_column in df.columns else None
    return df, labels


def predict_file(model, tokenizer, task: TaskSpec, rows: tuple[Any, np.ndarray | None], output_path: Path,
                 device: torch.device, max_length: int = 128, batch_size: int = 64,
                 progress: bool = True) -> dict[str, Any]:
    """Write ``output_path`` (the input's columns plus ``prediction`` (the label name), ``prediction_id`` and
    ``prob_<label>`` per class; ``prediction`` alone, the value, for regression) for
    ``rows`` from ``read_input``; return a summary: rows, output path and, with labels, the task's scores."""
    from tqdm.auto import tqdm

    out_kind = _check_output(output_path)
    df, labels = rows
    texts = [["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in df[c].tolist()]
             for c in task.text_columns]
    model.eval()
    chunks = []
    for start in tqdm(range(0, len(df), batch_size), desc="predict", unit="batch", disable=not progress,
                      file=sys.stderr):
        batch = [t[start:start + batch_size] for t in texts]
        enc = tokenizer(*batch, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        with torch.no_grad():
            chunks.append(model(**{k: v.to(device) for k, v in enc.items()}).logits.float().cpu().numpy())
    logits = np.concatenate(chunks)
    result = df.copy()
    if task.is_regression:
        result[PREDICTION_COLUMN] = logits[:, 0]
    else:
        probs = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
        names = list(task.label_names or [str(i) for i in range(logits.shape[1])])
        ids = probs.argmax(axis=1)
        result[PREDICTION_COLUMN] = [names[i] for i in ids]
        result[PREDICTION_ID_COLUMN] = ids.astype(np.int64)
        for k, name in enumerate(names):
            result[f"prob_{name}"] = probs[:, k].round(6)
    _write(result, output_path, out_kind)
    summary: dict[str, Any] = {"task": task.name, "rows": len(df), "output": str(output_path)}
    if labels is not None:
        scores = compute_metrics(task, logits, labels)
        summary.update(scores, primary_score=scores[task.primary_metric])
    return summary


def _write(df, path: Path, kind: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    if kind == "csv":
        df.to_csv(tmp, index=False)
    elif kind == "tsv":
        df.to_csv(tmp, sep="\t", index=False)
    elif kind == "parquet":
        df.to_parquet(tmp, index=False)
    else:
        df.to_json(tmp, orient="records", lines=kind == "jsonl", force_ascii=False)
    tmp.replace(path)
