"""Tasks: GLUE and custom task specs, data loading and tokenising, and metrics."""

from autolor2c.tasks.data import encode_task, load_task_data, resolve_data_dir
from autolor2c.tasks.metrics import compute_metrics, trivial_score
from autolor2c.tasks.registry import TaskSpec, custom_task, get_task, list_tasks

__all__ = [
    "TaskSpec",
    "compute_metrics",
    "custom_task",
    "encode_task",
    "get_task",
    "list_tasks",
    "load_task_data",
    "resolve_data_dir",
    "trivial_score",
]
