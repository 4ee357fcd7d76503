"""Export a searched configuration for other tools (see ``formats``)."""

from .formats import (FORMATS, export_config, export_folder, export_lora, find_trial_adapter, lora_part, run_record,
                      trained_settings, trial_runs)

__all__ = ["FORMATS", "export_config", "export_folder", "export_lora", "find_trial_adapter", "lora_part", "run_record",
           "trained_settings", "trial_runs"]
