"""A search keeps the libraries' expected warnings off the terminal (issue 23, point 4).

PEFT, on the LoRA path (the LoRA baseline of a default search, ``--space lora``, ``export --format lora``),
reads transformers' deprecated ``is_gradient_checkpointing`` (a FutureWarning) and, saving the adapter,
looks the base model up on the hub (two UserWarnings offline). The library ignores exactly those.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings


def test_a_small_lora_search_prints_no_library_warning(tmp_path, glue_dir):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    cmd = [sys.executable, "-m", "autolor2c.cli", "search", "--task", "sst2", "--budget", "10M", "--space", "lora",
           "--trials", "1", "--max-train-samples", "64", "--max-eval-samples", "64", "--min-steps", "0",
           "--seeds", "1", "--no-multi-fidelity", "--no-progress", "--no-baselines",
           "--storage", f"sqlite:///{tmp_path / 's.db'}", "--out", str(tmp_path / "out"), "--data-dir", str(glue_dir)]
    p = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (tmp_path / "out" / "adapter").is_dir()  # the LoRA adapter was retrained and saved
    # no baselines were trained, so the report claims no baselines' one-off among its stages
    stages = next(ln for ln in (tmp_path / "out" / "report.md").read_text().splitlines() if "by stage" in ln)
    assert "trials" in stages and "baselines" not in stages
    noisy = [line for line in p.stderr.splitlines() if "warn" in line.lower()]
    assert not noisy, p.stderr[-3000:]


def test_only_the_expected_warnings_are_ignored():
    from autolor2c.train.backbone import EXPECTED_WARNINGS, quiet_expected_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_expected_warnings()
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning)
        warnings.warn("Unable to fetch remote file due to the following error [Errno -2] Name or service not known"
                      " - silently ignoring the lookup for the file config.json in org/name.", UserWarning)
        warnings.warn("Could not find a config file in org/name - will assume that the vocabulary was not "
                      "modified.", UserWarning)
        warnings.warn("`gradient_checkpointing_enable` is deprecated and will be removed in v6.", FutureWarning)
        warnings.warn("something else", UserWarning)
    assert [str(w.message) for w in caught] == [
        "`gradient_checkpointing_enable` is deprecated and will be removed in v6.", "something else"]
    assert len(EXPECTED_WARNINGS) == 3
