"""Small random models of each supported architecture, built from a config (no download): what the tests and
the method benchmarks check LoR2C on. Not used by the library itself."""

from __future__ import annotations

import copy

import torch
from torch import nn

from autolor2c.lor2c import LoR2CConfig, LoR2CModel
from autolor2c.lor2c.model import find_layer_stack


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


# The reference LoR2C forward (the formula, by module replacement, no hooks) the hooks are checked against.
def inputs(batch=3, seq=9, vocab=101, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[1, 6:] = 0  # padding on one row
    mask[2, 4:] = 0
    ids[mask == 0] = 0
    return {"input_ids": ids, "attention_mask": mask}


def randomise(w: LoR2CModel, seed=0, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in w.adapter_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)


class _DirectLayer(nn.Module):
    """Reference implementation of the formula by module replacement (no hooks):
    out_j += sum over bypasses [i, j] of (h_in_i @ A^T @ B^T) * alpha / r."""

    def __init__(self, layer, idx, spans, mats, store):
        super().__init__()
        self.layer, self.idx, self.spans, self.mats, self.store = layer, idx, spans, mats, store

    def forward(self, hidden_states, *args, **kwargs):
        self.store[self.idx] = hidden_states
        out = self.layer(hidden_states, *args, **kwargs)
        h = out[0] if isinstance(out, tuple) else out
        for (i, j), (a, b, scale) in zip(self.spans, self.mats):
            if j == self.idx:
                h = h + (self.store[i] @ a.T @ b.T) * scale
        return (h,) + tuple(out[1:]) if isinstance(out, tuple) else h


def direct_forward(base, w: LoR2CModel, inputs):
    ref = copy.deepcopy(base)
    path, layers = find_layer_stack(ref)
    mats = []
    for b in w.bypasses:
        a = (b.A if b.A is not None else w.shared_A).detach().clone()
        mats.append((a, b.B.detach().clone(), b.alpha / b.rank))
    store = {}
    for idx in range(len(layers)):
        layers[idx] = _DirectLayer(layers[idx], idx, w.spans, mats, store)
    # The head of the reference must be the adapted model's head.
    for name in w.head_modules:
        parent, _, leaf = name.rpartition(".")
        setattr(ref.get_submodule(parent), leaf, copy.deepcopy(w.base_model.get_submodule(name)))
    with torch.no_grad():
        return ref(**inputs).logits


CONFIGS = [
    LoR2CConfig(dropout=0.0),
    LoR2CConfig(spans=[[0, 1], [2, 3]], rank=4, alpha=8.0, dropout=0.0),
    LoR2CConfig(spans=[[0, 2], [3, 3]], ranks=[2, 6], alphas=[4.0, 12.0], dropout=0.0),
    LoR2CConfig(share_a=True, rank=4, dropout=0.0),
]


