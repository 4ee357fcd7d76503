"""Loading task data (GLUE files, the Hugging Face hub, or custom files) and tokenising it.

Every loader returns a DatasetDict with splits "train" and "validation" whose columns are exactly
``task.text_columns + ("label",)``; the label is int64 for classification and float32 for regression.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
from datasets import Dataset, DatasetDict, Features, Value

from autolor2c.errors import UserError
from autolor2c.locations import data_folder, hub_offline_reason, offline_advice
from autolor2c.tasks.registry import TaskSpec, _normalise, get_task
from autolor2c.tasks.tables import canonical_label, infer_label_names, read_table

log = logging.getLogger(__name__)

DATA_DIR_ENV = "AUTOLOR2C_DATA_DIR"
HUB_DATASET = "nyu-mll/glue"


# ---------------------------------------------------------------------------------------------
# Where the data lives


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The GLUE data folder: ``data_dir``, else $AUTOLOR2C_DATA_DIR, else None (load from the hub)."""
    if data_dir is not None and str(data_dir) != "":
        return data_folder(str(data_dir))
    from_env = os.environ.get(DATA_DIR_ENV) or None
    if from_env is None:
        return None
    if not Path(from_env).expanduser().is_dir():
        raise UserError(f"data directory not found: {from_env} (from {DATA_DIR_ENV})")
    return Path(from_env).expanduser()


# ---------------------------------------------------------------------------------------------
# GLUE distribution files (train.tsv / dev.tsv)


@dataclass(frozen=True)
class _GlueFormat:
    """How one task's GLUE .tsv files are laid out."""

    columns: tuple[str | int, ...]  # source column of each text column (an index when there is no header)
    label: str | int
    header: bool = True
    dev_file: str = "dev.tsv"


_GLUE_FORMATS = {
    # CoLA: no header; source, label, original mark ("*"), sentence.
    "cola": _GlueFormat((3,), 1, header=False),
    "sst2": _GlueFormat(("sentence",), "label"),
    # MRPC: label first; the header's BOM is removed by reading as utf-8-sig.
    "mrpc": _GlueFormat(("#1 String", "#2 String"), "Quality"),
    "qqp": _GlueFormat(("question1", "question2"), "is_duplicate"),
    "stsb": _GlueFormat(("sentence1", "sentence2"), "score"),
    "mnli": _GlueFormat(("sentence1", "sentence2"), "gold_label", dev_file="dev_matched.tsv"),
    "qnli": _GlueFormat(("question", "sentence"), "label"),
    "rte": _GlueFormat(("sentence1", "sentence2"), "label"),
    "wnli": _GlueFormat(("sentence1", "sentence2"), "label"),
}

# Tasks whose files hold label names rather than ids; the names map to the hub's ids (= label_names order).
_STRING_LABEL_TASKS = {"mnli", "qnli", "rte"}


def _read_tsv_rows(path: Path) -> list[list[str]]:
    """Split a GLUE .tsv into fields with no quote handling (quotes are literal text in GLUE)."""
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    try:
        # newline="" and split("\n"): universal newlines or str.splitlines() would also split on a
        # stray "\r" or Unicode line separators inside a sentence.
        with open(path, encoding="utf-8-sig", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from e
    rows = []
    for line in text.split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if line:
            rows.append(line.split("\t"))
    return rows


def _label_parser(task: TaskSpec):
    """A function from the label field to the label, or None when the field is not a valid label."""
    if task.is_regression:

        def parse_float(s: str) -> float | None:
            try:
                v = float(s)
            except ValueError:
                return None
            return v if math.isfinite(v) else None

        return parse_float
    if task.name in _STRING_LABEL_TASKS:
        ids = {n: i for i, n in enumerate(task.label_names)}
    else:
        ids = {str(i): i for i in range(task.num_labels)}
    return lambda s: ids.get(s.strip())


def _label_feature(task: TaskSpec) -> Value:
    return Value("float32") if task.is_regression else Value("int64")


def _features(task: TaskSpec) -> Features:
    return Features({**{c: Value("string") for c in task.text_columns}, "label": _label_feature(task)})


def _read_glue_file(task: TaskSpec, fmt: _GlueFormat, path: Path) -> Dataset:
    rows = _read_tsv_rows(path)
    if not rows:
        raise UserError(f"data file is empty: {path}")
    if fmt.header:
        header = [h.strip() for h in rows[0]]
        rows = rows[1:]
        idx = []
        for col in (*fmt.columns, fmt.label):
            if col not in header:
                raise UserError(f"column {col!r} not found in {path} (columns: {', '.join(header)})")
            idx.append(header.index(col))
    else:
        idx = [*fmt.columns, fmt.label]
        if len(rows[0]) <= max(idx):
            raise UserError(f"expected at least {max(idx) + 1} tab-separated columns in {path}, "
                            f"found {len(rows[0])}")
    *text_idx, label_idx = idx
    need = max(idx) + 1
    parse = _label_parser(task)
    texts: list[list[str]] = [[] for _ in text_idx]
    labels = []
    dropped = 0
    for row in rows:
        # Short rows (e.g. QQP questions broken by a newline) and bad labels are dropped, as the hub does.
        label = parse(row[label_idx]) if len(row) >= need else None
        if label is None:
            dropped += 1
            continue
        for out, i in zip(texts, text_idx):
            out.append(row[i])
        labels.append(label)
    if dropped:
        log.warning("%s: dropped %d malformed row(s) without a valid label", path, dropped)
    if not labels:
        raise UserError(f"no rows with a valid label in {path}")
    data = dict(zip(task.text_columns, texts))
    data["label"] = labels
    return Dataset.from_dict(data, features=_features(task))


def _load_glue_dir(task: TaskSpec, root: Path) -> DatasetDict:
    fmt = _GLUE_FORMATS[task.name]
    folder = root / task.glue_dir
    # Also accept the task's own folder given directly (e.g. --data-dir glue/SST-2).
    if not folder.is_dir() and _normalise(root.name) == task.name:
        folder = root
    return DatasetDict(
        train=_read_cached(task, folder / "train.tsv", lambda p: _read_glue_file(task, fmt, p)),
        validation=_read_cached(task, folder / fmt.dev_file, lambda p: _read_glue_file(task, fmt, p)),
    )


# A search reads the same files for every trial and rung: parse each once per process (keyed by the
# file's identity, so an edited file is read again). Arrow datasets are immutable, so sharing is safe.
_read_cache: dict[tuple, Dataset] = {}


def _read_cached(task: TaskSpec, path: Path, read) -> Dataset:
    try:
        st = path.stat()
    except OSError:
        return read(path)  # the reader reports the missing file
    key = (task, str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _read_cache:
        if len(_read_cache) >= 16:
            _read_cache.pop(next(iter(_read_cache)))
        _read_cache[key] = read(path)
    return _read_cache[key]


# ---------------------------------------------------------------------------------------------
# The Hugging Face hub

# Hub columns that differ from ours.
_HUB_RENAMES = {"mnli": {"premise": "sentence1", "hypothesis": "sentence2"}}


@contextlib.contextmanager
def _hub_offline():
    """``datasets`` and ``huggingface_hub`` in offline mode (they read the variables once, at import), and
    the cache's expected "Using the latest cached version" warning kept quiet."""
    from huggingface_hub import constants as hub_constants

    saved = (datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    verbosity = datasets.logging.get_verbosity()
    datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    datasets.logging.set_verbosity_error()
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved
        datasets.logging.set_verbosity(verbosity)


def _load_from_hub(task: TaskSpec) -> DatasetDict:
    offline = hub_offline_reason()
    try:
        if offline is None:
            raw = datasets.load_dataset(HUB_DATASET, task.name)
        else:  # only the local cache, at once: the hub's client would retry for about 20 s
            with _hub_offline():
                raw = datasets.load_dataset(HUB_DATASET, task.name)
    except Exception as e:  # network, hub or cache errors all get the same advice
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if offline is None:
            where, advice = "", ""
        else:
            where, advice = f" (offline: {offline}) or its local cache", f", {offline_advice()}"
        raise UserError(
            f"could not load GLUE task '{task.name}' from the Hugging Face hub{where} "
            f"({type(e).__name__}: {reason[:200]}); give {{param}}, the folder of the GLUE files, "
            f"or set {DATA_DIR_ENV}{advice}", param="data_dir") from e
    out = DatasetDict()
    for split, source in (("train", "train"), ("validation", task.validation_split)):
        if source not in raw:
            raise UserError(f"the hub's {HUB_DATASET}/{task.name} has no split {source!r}")
        ds = raw[source]
        renames = {k: v for k, v in _HUB_RENAMES.get(task.name, {}).items() if k in ds.column_names}
        if renames:
            ds = ds.rename_columns(renames)
        ds = ds.select_columns([*task.text_columns, "label"])
        # The hub's labels are ClassLabel; ours are plain int64 / float32.
        out[split] = ds.cast(_features(task))
    return out


# ---------------------------------------------------------------------------------------------
# Custom files

def _as_text(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return v if isinstance(v, str) else str(v)


def _read_custom_file(task: TaskSpec, path: Path, label_names: tuple[str, ...] | None) -> Dataset:
    df = read_table(path, (*task.text_columns, task.label_column))
    ids = None if label_names is None else {n: i for i, n in enumerate(label_names)}
    texts: list[list[str]] = [[] for _ in task.text_columns]
    text_values = [df[c].tolist() for c in task.text_columns]
    labels = []
    for row, raw in enumerate(df[task.label_column].tolist()):
        canon = canonical_label(raw)
        if canon is None:  # an empty label: nothing to learn from
            continue
        if task.is_regression:
            try:
                label = float(canon)
            except ValueError:
                raise UserError(f"label {raw!r} in column {task.label_column!r} of {path} (row {row + 1}) "
                                f"is not a number") from None
        else:
            label = ids.get(str(canon))
            if label is None:
                raise UserError(f"label {raw!r} in column {task.label_column!r} of {path} is not one of "
                                f"the task's labels ({', '.join(label_names)})")
        for out, values in zip(texts, text_values):
            out.append(_as_text(values[row]))
        labels.append(label)
    if not labels:
        raise UserError(f"no rows with a label in column {task.label_column!r} of {path}")
    data = dict(zip(task.text_columns, texts))
    data["label"] = labels
    return Dataset.from_dict(data, features=_features(task))


def _load_custom(task: TaskSpec) -> DatasetDict:
    label_names = task.label_names
    if not task.is_regression and label_names is None:
        # A hand-built TaskSpec: infer the classes as custom_task would.
        values = []
        for f in (task.train_file, task.validation_file):
            values += read_table(Path(f), (task.label_column,))[task.label_column].tolist()
        label_names = infer_label_names(values)
    return DatasetDict(
        train=_read_cached(task, Path(task.train_file), lambda p: _read_custom_file(task, p, label_names)),
        validation=_read_cached(task, Path(task.validation_file), lambda p: _read_custom_file(task, p, label_names)),
    )


# ---------------------------------------------------------------------------------------------
# Public entry points


def _subsample(ds: Dataset, n: int | None, seed: int, what: str) -> Dataset:
    if n is None:
        return ds
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UserError(f"{what} must be a positive integer, got {n!r}")
    if n >= len(ds):
        return ds
    return ds.shuffle(seed=seed).select(range(n))


SELECTION_SEED = 20250301  # fixed: the selection split is the same for every trial, seed and search


def selection_size(n_train: int, fraction: float, cap: int | None) -> int:
    """Rows held out of a training set of ``n_train`` rows as the selection split."""
    if fraction <= 0:
        return 0
    m = max(1, int(round(n_train * fraction)))
    return min(m, cap) if cap else m


def load_task_data(
    task: TaskSpec | str,
    data_dir: str | os.PathLike | None = None,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    seed: int = 0,
    selection_fraction: float = 0.0,
    selection_cap: int | None = None,
) -> DatasetDict:
    """Train and validation splits of ``task``: from its own files (custom), a GLUE folder, or the hub.

    ``max_train_samples`` / ``max_eval_samples`` take a seeded random subset of that size. With
    ``selection_fraction`` > 0, a fixed part of the training rows (at most ``selection_cap``) is held out
    as a third split, "selection", on which a search scores its trials; "train" is the rest, so the
    task's dev set ("validation") is never used to choose anything.
    """
    task = get_task(task)
    if task.is_custom:
        splits = _load_custom(task)
    else:
        root = resolve_data_dir(data_dir)
        splits = _load_glue_dir(task, root) if root is not None else _load_from_hub(task)
    train = splits["train"]
    out = {}
    m = selection_size(len(train), selection_fraction, selection_cap)
    if m:
        if m >= len(train):
            raise UserError(f"selection_fraction={selection_fraction!r} leaves no training rows for {task.name}")
        order = train.shuffle(seed=SELECTION_SEED)
        # max_eval_samples caps what trials are scored on as well (the same rows for every trial)
        out["selection"] = _subsample(order.select(range(m)), max_eval_samples, SELECTION_SEED, "max_eval_samples")
        train = order.select(range(m, len(order)))
    out["train"] = _subsample(train, max_train_samples, seed, "max_train_samples")
    out["validation"] = _subsample(splits["validation"], max_eval_samples, seed, "max_eval_samples")
    return DatasetDict(out)


# Bump when the encoded layout changes, so old on-disk caches are not reused.
_ENCODE_FORMAT_VERSION = 1
_ENCODE_CACHE_SIZE = 8
_encode_cache: OrderedDict[tuple, DatasetDict] = OrderedDict()


def clear_encode_cache() -> None:
    """Forget the in-process cache of encode_task (the on-disk cache is kept)."""
    _encode_cache.clear()


def _encode_key(task: TaskSpec, splits: Mapping[str, Dataset], tokenizer, max_length: int) -> tuple:
    return (
        _ENCODE_FORMAT_VERSION,
        str(getattr(tokenizer, "name_or_path", "")),
        type(tokenizer).__name__,
        len(tokenizer),
        task.name,
        task.text_columns,
        max_length,
        tuple((name, ds._fingerprint) for name, ds in sorted(splits.items())),
    )


def _save_atomically(encoded: DatasetDict, folder: Path, key: tuple) -> None:
    # Write beside the final folder and rename, so parallel trials never read a half-written cache.
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        encoded.save_to_disk(str(tmp))
        (tmp / "autolor2c_key.json").write_text(json.dumps(key, indent=1))
        os.rename(tmp, folder)
    except OSError as e:
        if not folder.is_dir():
            log.warning("could not write the tokenised-data cache %s: %s", folder, e)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def encode_task(
    task: TaskSpec | str,
    splits: Mapping[str, Dataset],
    tokenizer,
    max_length: int = 128,
    cache_dir: str | os.PathLike | None = None,
) -> DatasetDict:
    """Tokenise every split into ``input_ids``, ``attention_mask`` (``token_type_ids``), ``labels``.

    Truncates to ``max_length`` and does not pad (the training loop pads each batch). Results are
    cached in this process, and under ``cache_dir`` when it is given. The returned DatasetDict may be
    the cached object itself: copy it before changing it in place.
    """
    task = get_task(task)
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise UserError(f"max_length must be a positive integer, got {max_length!r}")
    key = _encode_key(task, splits, tokenizer, max_length)
    if key in _encode_cache:
        _encode_cache.move_to_end(key)
        return _encode_cache[key]

    folder = None
    encoded = None
    if cache_dir is not None:
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()
        folder = Path(cache_dir).expanduser() / f"encoded-{task.name}-{digest[:32]}"
        if (folder / "dataset_dict.json").is_file():
            try:
                encoded = datasets.load_from_disk(str(folder))
            except Exception as e:  # a damaged cache is rebuilt, not fatal
                log.warning("ignoring unreadable tokenised-data cache %s: %s", folder, e)

    if encoded is None:
        encoded = _tokenize(task, splits, tokenizer, max_length)
        if folder is not None:
            try:
                folder.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UserError(f"cannot create cache directory {folder.parent}: {e}") from e
            _save_atomically(encoded, folder, key)

    _encode_cache[key] = encoded
    while len(_encode_cache) > _ENCODE_CACHE_SIZE:
        _encode_cache.popitem(last=False)
    return encoded


_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _tokenize(task: TaskSpec, splits: Mapping[str, Dataset], tokenizer, max_length: int) -> DatasetDict:
    cols = task.text_columns
    # Probe once for the tokenizer's outputs, so the features (and the label dtype) are declared up front.
    probe = tokenizer(*[["probe"]] * len(cols), truncation=True, max_length=max_length)
    keys = [k for k in _MODEL_INPUTS if k in probe]
    features = Features({**{k: datasets.Sequence(Value("int64")) for k in keys}, "labels": _label_feature(task)})

    def encode(batch: dict[str, list]) -> dict[str, list]:
        enc = tokenizer(*(batch[c] for c in cols), truncation=True, max_length=max_length)
        out = {k: enc[k] for k in keys}
        out["labels"] = batch["label"]
        return out

    out = DatasetDict()
    for name, ds in splits.items():
        missing = [c for c in (*cols, "label") if c not in ds.column_names]
        if missing:
            raise UserError(f"split {name!r} of task '{task.name}' lacks column(s) {missing}")
        out[name] = ds.map(
            encode,
            batched=True,
            batch_size=2000,
            remove_columns=ds.column_names,
            features=features,
            load_from_cache_file=False,
            desc=f"tokenising {task.name}/{name}",
        )
    return out
