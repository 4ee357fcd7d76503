"""Reports that work offline and in optuna-dashboard: plotly charts with plotly.js inside the file (no
CDN), an importances chart, ``trials.csv``, and the study's files uploaded to an Optuna artifact store so
the dashboard lists them (and serves them for download)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import optuna

from ..run import DEFAULT_STORAGE, artifact_metadata, journal_path, storage_kind

ARTIFACTS_ATTR = "artifact_ids"  # study user attr: uploaded file name -> artifact id (re-uploads overwrite)
ARTIFACT_DIR_NAME = "artifacts"


def write_offline_html(fig, path: Path) -> Path:
    """A chart that opens without a network: plotly.js (about 4.6 MB) is written into the file."""
    fig.write_html(path, include_plotlyjs=True, full_html=True)
    return path


def importances_figure(imp: dict[str, dict[str, float]], study_name: str):
    """fANOVA importances, one bar group per objective (the chart beside importances.json)."""
    import plotly.graph_objects as go

    params = sorted({p for per in imp.values() for p in per}, key=lambda p: -max(per.get(p, 0.0) for per in imp.values()))
    fig = go.Figure([go.Bar(name=objective, y=params, x=[per.get(p, 0.0) for p in params], orientation="h")
                     for objective, per in imp.items()])
    fig.update_layout(title=f"{study_name}: parameter importances (fANOVA)" if imp else
                      f"{study_name}: importances need at least 10 top-rung trials",
                      xaxis_title="importance", barmode="group", yaxis=dict(autorange="reversed"))
    return fig


def write_tables_and_charts(study: optuna.Study, out: Path, imp: dict[str, dict[str, float]]) -> dict[str, Path]:
    """``trials.csv`` (Optuna's trials_dataframe: every trial, its params, values and attributes) and
    ``importances.html``."""
    paths = {"trials_csv": out / "trials.csv", "importances_chart": out / "importances.html"}
    study.trials_dataframe().to_csv(paths["trials_csv"], index=False)
    write_offline_html(importances_figure(imp, study.study_name), paths["importances_chart"])
    return paths


def artifact_dir(storage_url: str | None) -> Path:
    """Where a storage's artifact store lives: ``artifacts/`` beside a SQLite or journal file, else
    ``studies/artifacts`` (PostgreSQL, MySQL, memory). `autolor2c dashboard` applies the same rule."""
    url = storage_url or os.environ.get("AUTOLOR2C_STORAGE") or DEFAULT_STORAGE
    kind = storage_kind(url)
    if kind == "sqlite":
        return Path(url.split(":///", 1)[1]).parent / ARTIFACT_DIR_NAME
    if kind == "journal":
        return Path(journal_path(url)).parent / ARTIFACT_DIR_NAME
    return Path("studies") / ARTIFACT_DIR_NAME


def artifact_store(storage_url: str | None):
    from optuna.artifacts import FileSystemArtifactStore

    folder = artifact_dir(storage_url)
    folder.mkdir(parents=True, exist_ok=True)
    return FileSystemArtifactStore(str(folder))


def upload_study_artifacts(study: optuna.Study, out: Path, storage_url: str | None) -> dict[str, str]:
    """Upload the report, best config, charts, trials.csv and the adapter folder (as adapter.zip) to the
    study's artifact store. A file uploaded before is overwritten under its artifact id, so a resumed
    search keeps one artifact per file. Returns file name -> artifact id."""
    from optuna.artifacts import upload_artifact

    store = artifact_store(storage_url)
    files = [out / n for n in ("report.md", "best_config.yaml", "pareto.html", "hypervolume.html",
                               "importances.html", "importances.json", "trials.csv", "retrain.json")]
    if (out / "adapter").is_dir():
        zipped = shutil.make_archive(str(out / "adapter"), "zip", root_dir=out, base_dir="adapter")
        files.append(Path(zipped))
    ids: dict[str, str] = dict(study.user_attrs.get(ARTIFACTS_ATTR, {}))
    metas = artifact_metadata(study)
    for path in files:
        if not path.is_file():
            continue
        # an id deleted in the dashboard has its metadata set to null there: upload such a file anew
        if path.name in ids and metas.get(f"artifacts:{ids[path.name]}") not in (None, "null"):
            with path.open("rb") as f:
                store.write(ids[path.name], f)
        else:
            ids[path.name] = upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=study,
                                             mimetype=_MIMETYPES.get(path.suffix))
    study.set_user_attr(ARTIFACTS_ATTR, ids)
    return ids


_MIMETYPES = {".md": "text/markdown", ".yaml": "application/yaml", ".html": "text/html", ".json": "application/json",
              ".csv": "text/csv", ".zip": "application/zip"}


__all__ = ["artifact_dir", "artifact_store", "importances_figure", "upload_study_artifacts", "write_offline_html",
           "write_tables_and_charts"]
