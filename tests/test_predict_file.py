"""`autolor2c predict --adapter DIR --input FILE`: a prediction and class probabilities per row in every
supported format, the file scored when it has labels, and bad files refused in one line (exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from autolor2c.cli import main
from autolor2c.lor2c import LoR2CConfig, get_lor2c_model
from autolor2c.train import load_backbone, save_adapter

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """An SST-2 adapter on the embedded model (random but fixed weights: predictions are what they are)."""
    w = get_lor2c_model(load_backbone(None, 2, seed=0), LoR2CConfig(rank=2, dropout=0.0))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in w.adapter_parameters():
            p.normal_(0, 0.05)
    meta = {"task": "sst2", "task_spec": None, "model": None, "num_labels": 2, "max_length": 64, "seed": 0,
            "primary_metric": "accuracy", "primary_score": 0.5, "scores": {}, "trainable_params": w.num_adapter_params()}
    return save_adapter(w, tmp_path_factory.mktemp("a") / "adapter", meta)


@pytest.fixture(scope="module")
def dev_rows(glue_dir):
    df = pd.read_csv(glue_dir / "SST-2" / "dev.tsv", sep="\t", dtype=str, keep_default_na=False, quoting=3)
    return df.head(40).assign(id=range(40))


def _write(df: pd.DataFrame, path: Path) -> Path:
    kind = path.suffix
    if kind == ".csv":
        df.to_csv(path, index=False)
    elif kind == ".tsv":
        df.to_csv(path, sep="\t", index=False)
    elif kind == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_json(path, orient="records", lines=kind == ".jsonl")
    return path


def test_predictions_per_row_in_every_format_and_scored(adapter, dev_rows, tmp_path, capsys):
    outputs = {}
    for ext in (".csv", ".tsv", ".json", ".jsonl", ".parquet"):
        src = _write(dev_rows, tmp_path / f"in{ext}")
        out = tmp_path / f"out{ext}"
        assert main(["predict", "--adapter", str(adapter), "--input", str(src), "--output", str(out),
                     "--batch-size", "16", "--no-progress"]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        got = pd.read_parquet(out) if ext == ".parquet" else (
            pd.read_json(out, lines=ext == ".jsonl") if ext in (".json", ".jsonl") else
            pd.read_csv(out, sep="\t" if ext == ".tsv" else ",", keep_default_na=False))
        assert len(got) == 40 and list(got["id"]) == list(range(40))  # every row, in order, columns kept
        assert set(got["prediction"]) <= {"negative", "positive"}
        assert ((got["prob_negative"] + got["prob_positive"] - 1).abs() < 1e-5).all()
        want_pred = got[["prob_negative", "prob_positive"]].to_numpy().argmax(axis=1)
        assert list(got["prediction"]) == [("negative", "positive")[i] for i in want_pred]
        labels = [int(x) for x in dev_rows["label"]]
        assert summary["rows"] == 40 and summary["accuracy"] == pytest.approx(
            sum(int(p == l) for p, l in zip(want_pred, labels)) / 40)
        outputs[ext] = got["prob_positive"].to_numpy()
    for ext, probs in outputs.items():  # the same rows give the same probabilities whatever the format
        assert abs(probs - outputs[".csv"]).max() < 1e-5, ext
    # batched predictions equal one text at a time
    assert main(["predict", "--adapter", str(adapter), "--text", dev_rows["sentence"][3]]) == 0
    one = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    row = pd.read_csv(tmp_path / "out.csv", keep_default_na=False).iloc[3]
    assert one["label"] == row["prediction"] and one["probability"] == pytest.approx(row[f"prob_{one['label']}"], abs=1e-4)


def test_prediction_id_compares_with_a_0_1_label_column(adapter, dev_rows, tmp_path, capsys):
    src = _write(dev_rows, tmp_path / "in.csv")
    assert main(["predict", "--adapter", str(adapter), "--input", str(src), "--output", str(tmp_path / "o.csv"),
                 "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    got = pd.read_csv(tmp_path / "o.csv", keep_default_na=False)
    assert got["prediction_id"].dtype.kind == "i" and set(got["prediction_id"]) <= {0, 1}
    assert list(got["prediction"]) == [("negative", "positive")[i] for i in got["prediction_id"]]
    # the file's own 0/1 labels compare without a label map, and agree with the summary's score
    assert (got["prediction_id"] == got["label"].astype(int)).mean() == pytest.approx(summary["accuracy"])


def test_unlabelled_file_gets_predictions_without_scores(adapter, dev_rows, tmp_path, capsys):
    src = _write(dev_rows[["sentence"]], tmp_path / "texts.csv")
    assert main(["predict", "--adapter", str(adapter), "--input", str(src), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "accuracy" not in summary and summary["output"] == str(tmp_path / "texts.predictions.jsonl")
    assert len(pd.read_json(tmp_path / "texts.predictions.jsonl", lines=True)) == 40


def test_bad_files_are_one_line_and_exit_2(adapter, dev_rows, tmp_path):
    cases = {
        "missing column": (_write(dev_rows.rename(columns={"sentence": "text"}), tmp_path / "nocol.csv"), "'sentence'"),
        "empty": (_write(dev_rows.head(0), tmp_path / "empty.csv"), "no rows"),
        "unreadable": (tmp_path / "broken.parquet", "broken.parquet"),
        "bad label": (_write(dev_rows.assign(label="maybe"), tmp_path / "badlabel.csv"), "maybe"),
        "unsupported": (tmp_path / "x.xlsx", ".xlsx"),
        "no such file": (tmp_path / "absent.csv", "absent.csv"),
    }
    (tmp_path / "broken.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "x.xlsx").write_bytes(b"PK")
    for why, (path, needle) in cases.items():
        p = subprocess.run([sys.executable, "-m", "autolor2c.cli", "predict", "--adapter", str(adapter),
                            "--input", str(path), "--no-progress"], capture_output=True, text=True, timeout=120,
                           cwd=REPO)
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert p.returncode == 2 and len(lines) == 1, (why, p.stderr[-800:])
        assert lines[0].startswith("autolor2c: error: ") and needle in lines[0], (why, lines)
