"""Task specifications: the GLUE tasks by name, and custom tasks built from the user's own files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autolor2c.errors import UserError
from autolor2c.tasks.tables import CUSTOM_FORMATS, infer_label_names, read_table

@dataclass(frozen=True)
class TaskSpec:
    """What the data loader, the tokeniser step and the metrics need to know about a task.

    ``text_columns`` are the column names after loading (the hub's names; 1 or 2 of them).
    ``num_labels`` is 1 for regression. ``glue_dir`` is the folder of the GLUE distribution layout
    (``SST-2``, ...) and is ``None`` for custom tasks, which carry their own files instead.
    """

    name: str
    text_columns: tuple[str, ...]
    num_labels: int
    is_regression: bool
    metrics: tuple[str, ...]
    primary_metric: str
    validation_split: str = "validation"
    glue_dir: str | None = None
    label_names: tuple[str, ...] | None = None
    train_file: str | None = None
    validation_file: str | None = None
    label_column: str = "label"

    @property
    def is_custom(self) -> bool:
        return self.train_file is not None


_NLI2 = ("entailment", "not_entailment")

# Primary metrics follow the LoRA/LoR2C GLUE convention: MCC for CoLA, Pearson for STS-B, accuracy
# for everything else (MRPC/QQP also report F1).
_GLUE: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        TaskSpec("cola", ("sentence",), 2, False, ("matthews_correlation", "accuracy"),
                 "matthews_correlation", glue_dir="CoLA", label_names=("unacceptable", "acceptable")),
        TaskSpec("sst2", ("sentence",), 2, False, ("accuracy",), "accuracy",
                 glue_dir="SST-2", label_names=("negative", "positive")),
        TaskSpec("mrpc", ("sentence1", "sentence2"), 2, False, ("accuracy", "f1"), "accuracy",
                 glue_dir="MRPC", label_names=("not_equivalent", "equivalent")),
        TaskSpec("qqp", ("question1", "question2"), 2, False, ("accuracy", "f1"), "accuracy",
                 glue_dir="QQP", label_names=("not_duplicate", "duplicate")),
        TaskSpec("stsb", ("sentence1", "sentence2"), 1, True, ("pearson", "spearmanr"), "pearson",
                 glue_dir="STS-B"),
        TaskSpec("mnli", ("sentence1", "sentence2"), 3, False, ("accuracy",), "accuracy",
                 validation_split="validation_matched", glue_dir="MNLI",
                 label_names=("entailment", "neutral", "contradiction")),
        TaskSpec("qnli", ("question", "sentence"), 2, False, ("accuracy",), "accuracy",
                 glue_dir="QNLI", label_names=_NLI2),
        TaskSpec("rte", ("sentence1", "sentence2"), 2, False, ("accuracy",), "accuracy",
                 glue_dir="RTE", label_names=_NLI2),
        # The hub orders WNLI's classes the other way round from RTE/QNLI.
        TaskSpec("wnli", ("sentence1", "sentence2"), 2, False, ("accuracy",), "accuracy",
                 glue_dir="WNLI", label_names=("not_entailment", "entailment")),
    )
}


def _normalise(name: str) -> str:
    # "SST-2", "sst_2" and "sst2" all mean the same task.
    return name.strip().lower().replace("-", "").replace("_", "")


def list_tasks() -> list[str]:
    """The built-in task names, sorted."""
    return sorted(_GLUE)


def get_task(name: str | TaskSpec) -> TaskSpec:
    """The built-in task called ``name`` (case-insensitive; "SST-2" works too). A TaskSpec passes through."""
    if isinstance(name, TaskSpec):
        return name
    if not isinstance(name, str) or _normalise(name) not in _GLUE:
        raise UserError(f"unknown task {name!r} (known: {', '.join(list_tasks())})")
    return _GLUE[_normalise(name)]


def custom_task(
    train_file: str | Path,
    validation_file: str | Path,
    text_columns: list[str] | tuple[str, ...],
    label_column: str = "label",
    regression: bool = False,
    name: str | None = None,
) -> TaskSpec:
    """A task from the user's own CSV/TSV/JSON/JSONL/parquet files (format from the extension).

    The files are read once here so that a missing file or column fails early and, for classification,
    ``num_labels``/``label_names`` are known before the model is built: integer labels 0..K-1 are used
    as they are; any other labels (strings, ...) are sorted and numbered from 0.
    """
    text_columns = tuple(text_columns)
    if not 1 <= len(text_columns) <= 2:
        raise UserError(f"a task takes 1 or 2 text columns, got {len(text_columns)}: {list(text_columns)}")
    if label_column in text_columns:
        raise UserError(f"label column {label_column!r} is also given as a text column")
    if validation_file is None:
        raise UserError("a custom task needs a validation file")
    files = []
    for f in (train_file, validation_file):
        p = Path(f).expanduser()
        if p.suffix.lower() not in CUSTOM_FORMATS:
            raise UserError(f"unsupported data file extension {p.suffix!r} for {p} "
                            f"(use one of: {', '.join(CUSTOM_FORMATS)})")
        files.append(p)

    frames = [read_table(p, (*text_columns, label_column)) for p in files]
    if regression:
        num_labels, label_names = 1, None
        metrics: tuple[str, ...] = ("pearson", "spearmanr")
    else:
        label_names = infer_label_names([v for df in frames for v in df[label_column]])
        num_labels = len(label_names)
        if num_labels < 2:
            raise UserError(f"column {label_column!r} in {files[0]} has fewer than 2 distinct labels "
                            f"({list(label_names)})")
        metrics = ("accuracy", "f1") if num_labels == 2 else ("accuracy", "f1_macro")
    return TaskSpec(
        name=name or "custom",
        text_columns=text_columns,
        num_labels=num_labels,
        is_regression=regression,
        metrics=metrics,
        primary_metric=metrics[0],
        label_names=label_names,
        train_file=str(files[0]),
        validation_file=str(files[1]),
        label_column=label_column,
    )
