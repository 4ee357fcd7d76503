"""LoR2C: low-rank residual bypasses over spans of a frozen transformer's layers (arXiv 2503.00572).

Pure torch + transformers; knows nothing of training, search or the CLI.
"""

from .config import CRITERIA, ConfigError, LoR2CConfig
from .layer import Bypass, InjectedLoRA, low_rank_singular_values, sfs_score
from .model import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    AdapterLoadError,
    LayerStackError,
    LoR2CModel,
    ModelShape,
    adapter_files,
    count_params,
    find_layer_stack,
    get_lor2c_model,
    planned_params,
    read_adapter_config,
)
from .structure import can_merge, guaranteed_events, structure_limits

__all__ = [
    "AdapterLoadError", "Bypass", "adapter_files", "CONFIG_NAME", "CRITERIA", "ConfigError", "InjectedLoRA",
    "LayerStackError", "LoR2CConfig", "LoR2CModel", "ModelShape", "WEIGHTS_NAME", "can_merge", "count_params",
    "find_layer_stack", "get_lor2c_model", "guaranteed_events", "low_rank_singular_values", "planned_params",
    "read_adapter_config", "sfs_score", "structure_limits",
]
