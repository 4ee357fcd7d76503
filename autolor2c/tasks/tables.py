"""Reading the user's own data files: a table from CSV/TSV/JSON/JSONL/parquet, and class names from
its label column. Apart from both the task registry (which reads a custom task's files once to know its
labels) and the loader (which turns the files into datasets), so neither imports the other back."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

from autolor2c.errors import UserError

# Extensions custom_task can read; the format is taken from the extension.
CUSTOM_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".parquet": "parquet",
}

_INT_RE = re.compile(r"[+-]?\d+")


def canonical_label(v: Any) -> int | str | None:
    """One label value as an int (when it is integral) or a string; None when empty/missing."""
    if v is None:
        return None
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, str):
        s = v.strip()
        if not s:
            return None
        return int(s) if _INT_RE.fullmatch(s) else s
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return None
    return int(f) if f.is_integer() else str(v)


def infer_label_names(values: Iterable[Any]) -> tuple[str, ...]:
    """Class names for a label column: ids 0..K-1 stay as they are, anything else is sorted and numbered."""
    unique = {c for c in map(canonical_label, values) if c is not None}
    if all(isinstance(c, int) for c in unique) and unique == set(range(len(unique))):
        return tuple(str(i) for i in range(len(unique)))
    # Integers sort numerically (so 2 < 10), before any strings.
    ordered = sorted(unique, key=lambda c: (1, 0, c) if isinstance(c, str) else (0, c, ""))
    return tuple(str(c) for c in ordered)


def read_table(path: Path, columns: Iterable[str]) -> "pd.DataFrame":
    """Read a custom data file into a DataFrame, checking that ``columns`` are present."""
    import pandas as pd  # here, not at import: the CLI checks a task without loading pandas

    path = Path(path)
    if not path.is_file():
        raise UserError(f"data file not found: {path}")
    kind = CUSTOM_FORMATS.get(path.suffix.lower())
    if kind is None:
        raise UserError(f"unsupported data file extension {path.suffix!r} for {path} "
                        f"(use one of: {', '.join(CUSTOM_FORMATS)})")
    try:
        if kind == "csv":
            # dtype=str keeps text such as "007" or "NA" exactly as written.
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif kind == "tsv":
            df = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
        elif kind == "parquet":
            df = pd.read_parquet(path)
        else:
            # dtype=False: keep the JSON values as written (no number or date guessing).
            lines = kind == "jsonl"
            try:
                df = pd.read_json(path, lines=lines, dtype=False)
            except ValueError:
                if lines:
                    raise
                # Many ".json" datasets are really JSON lines.
                df = pd.read_json(path, lines=True, dtype=False)
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"could not read {path} as {kind} ({type(e).__name__}: {str(e).strip()[:200]})") from e
    for col in columns:
        if col not in df.columns:
            raise UserError(f"column {col!r} not found in {path} (columns: {', '.join(map(str, df.columns))})")
    return df
