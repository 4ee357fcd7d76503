"""Results: what the search makes after its trials. The pick over seeds and the baselines (retrain.py), the
report, charts and dashboard notes (report.py), and the files uploaded to the study's artifact store
(artifacts.py)."""

from __future__ import annotations

from ..faces import lazy_exports

_HOME = {
    "Chosen": "retrain", "pick_over_seeds": "retrain", "seeds_to_hold": "retrain", "train_seeds": "retrain",
    "train_baselines": "retrain", "builtin_baselines": "retrain", "baselines_apart": "retrain",
    "train_baseline": "retrain", "HEAD_ONLY": "retrain", "trial_plan": "retrain",
    "baseline_noise_runs": "retrain", "parallel_workers": "retrain",
    "write_artifacts": "report", "print_front": "report", "best_config_dict": "report", "best_baseline": "report",
    "verdict": "report", "IMPORTANCE_MIN_TRIALS": "report", "importances": "report",
    "upload_study_artifacts": "artifacts", "artifact_dir": "artifacts", "artifact_store": "artifacts",
}

__all__ = sorted(_HOME)
__getattr__ = lazy_exports(__name__, _HOME)
