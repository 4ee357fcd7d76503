"""examples/train_with_trainer.py runs as written on a tiny random BERT (with a real tokenizer), and what it
saves (the adapter and each Trainer checkpoint) is what `autolor2c predict` reads; the README's Trainer
snippet is the example's core, line for line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from autolor2c.cli import main
from autolor2c.lor2c import LoR2CConfig

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "train_with_trainer.py"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory, minilm_path):
    """A 4-layer random BERT saved with the embedded model's tokenizer (its vocabulary size)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-bert")
    tok = AutoTokenizer.from_pretrained(str(minilm_path))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=128, num_labels=2)
    BertForSequenceClassification(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def trained(tiny_bert, glue_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("example")
    config = tmp / "best_config.yaml"  # what a search writes: method, adapter, train
    config.write_text(yaml.safe_dump({"method": "lor2c", "adapter": LoR2CConfig(
        rank=2, alpha=4, dropout=0.0, merge_count=1, inject_count=1).to_dict(), "train": {"max_length": 48}}))
    p = subprocess.run([sys.executable, str(EXAMPLE), "--config", str(config), "--task", "sst2",
                        "--model", str(tiny_bert), "--data-dir", str(glue_dir), "--out", str(tmp / "out"),
                        "--max-train-samples", "64", "--max-eval-samples", "32", "--max-steps", "8"],
                       capture_output=True, text=True, timeout=300, cwd=tmp)
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("{")][-1])
    return tmp, result


def test_example_trains_with_the_library_defaults_and_saves_an_adapter(trained):
    tmp, result = trained
    out = tmp / "out"
    assert result["steps"] == 8 and 0 <= result["dev"]["accuracy"] <= 1
    meta = json.loads((out / "adapter" / "lor2c_config.json").read_text())
    assert [e["op"] for e in meta["history"]] == ["merge", "inject"]  # the callback ran the schedule
    run = json.loads((out / "adapter" / "autolor2c.json").read_text())
    assert run["task"] == "sst2" and run["max_length"] == 48 and run["num_labels"] == 2
    args = json.loads((out / "checkpoint-8" / "trainer_state.json").read_text())
    assert args["global_step"] == 8


def test_predict_reads_the_example_adapter_and_its_checkpoint(trained, glue_dir, capsys):
    tmp, result = trained
    scores = []
    for folder in (tmp / "out" / "adapter", tmp / "out" / "checkpoint-8"):
        assert main(["predict", "--adapter", str(folder), "--data-dir", str(glue_dir),
                     "--max-eval-samples", "32"]) == 0
        scores.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["primary_score"])
    # the Trainer's dev score is the one predict computes from the saved folders
    assert scores[0] == scores[1] == pytest.approx(result["dev"]["accuracy"])
    src = tmp / "texts.csv"
    pd.DataFrame({"sentence": ["a gripping, funny film", "dull"]}).to_csv(src, index=False)
    assert main(["predict", "--adapter", str(tmp / "out" / "adapter"), "--input", str(src), "--no-progress"]) == 0


def test_a_folder_without_autolor2c_json_needs_the_task_in_one_line(trained, glue_dir, capsys):
    tmp, _ = trained
    bare = tmp / "bare"
    bare.mkdir()
    for name in ("lor2c_config.json", "lor2c_model.safetensors"):  # what model.save_pretrained writes
        (bare / name).write_bytes((tmp / "out" / "adapter" / name).read_bytes())
    p = subprocess.run([sys.executable, "-m", "autolor2c.cli", "predict", "--adapter", str(bare), "--data-dir",
                        str(glue_dir)], capture_output=True, text=True, timeout=120, cwd=REPO)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr[-800:]
    assert "no autolor2c.json" in lines[0] and "--task" in lines[0] and "write_run_meta" in lines[0]
    assert main(["predict", "--adapter", str(bare), "--task", "sst2", "--data-dir", str(glue_dir),
                 "--max-eval-samples", "32"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out.strip().splitlines()[-1])["primary_score"] <= 1


def test_readme_shows_the_example_core():
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Your own Hugging Face Trainer", 1)[1].split("\n### ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    example = EXAMPLE.read_text()
    flat = " ".join(example.split())
    for line in code.splitlines():
        line = line.split("  #", 1)[0].strip()
        if line and not line.startswith("#"):
            assert " ".join(line.split()) in flat, line
