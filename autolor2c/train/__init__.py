"""Training: one loop (``train``), the merge/inject schedule, adapters (LoR2C or a stock-PEFT LoRA baseline)."""

from .adapters import (
    AdaLoRASpec,
    AdapterSpec,
    LoRASpec,
    adapter_param_count,
    attach,
    builtin_configs,
    count_adapter_params,
    load_adapter,
    lora_part,
    model_shape,
    read_config_file,
    read_meta,
    save_adapter,
)
from .backbone import DEFAULT_MODEL, load_backbone, load_tokenizer, model_label, resolve_model
from .loop import (TRAINER_VERSION, Batches, TrainArgs, TrainingError, TrainResult, evaluate, planned_steps, predict_logits,
                   structure_schedule, train, training_args)

__all__ = [
    "AdaLoRASpec", "AdapterSpec", "Batches", "DEFAULT_MODEL", "LoRASpec", "TRAINER_VERSION", "TrainArgs", "TrainResult", "TrainingError", "adapter_param_count",
    "attach", "builtin_configs", "count_adapter_params", "evaluate", "load_adapter", "load_backbone",
    "load_tokenizer", "lora_part", "model_label", "model_shape", "planned_steps", "predict_logits", "read_config_file", "read_meta",
    "resolve_model", "save_adapter", "structure_schedule", "train", "training_args",
]
