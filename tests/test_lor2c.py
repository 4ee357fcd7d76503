"""The LoR2C method library: forward equivalence, gradients, exact counts, merge/inject, save/load."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from autolor2c.lor2c import (
    AdapterLoadError,
    ConfigError,
    LayerStackError,
    LoR2CConfig,
    LoR2CModel,
    ModelShape,
    count_params,
    find_layer_stack,
    get_lor2c_model,
    guaranteed_events,
    planned_params,
    structure_limits,
)

from autolor2c.testing import ARCHS, CONFIGS, direct_forward as _direct_forward, inputs as _inputs, \
    randomise as _randomise, tiny_model


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("cfg_idx", range(len(CONFIGS)))
def test_forward_matches_formula(arch, cfg_idx):
    base = tiny_model(arch).eval()
    inputs = _inputs()
    w = get_lor2c_model(copy.deepcopy(base), CONFIGS[cfg_idx]).eval()
    _randomise(w, seed=cfg_idx)
    with torch.no_grad():
        got = w(**inputs).logits
    want = _direct_forward(base, w, inputs)
    assert (got - want).abs().max().item() < 1e-5
    with torch.no_grad():
        plain = base(**inputs).logits
    assert (got - plain).abs().max().item() > 1e-3  # the bypasses really act


def test_forward_matches_formula_on_embedded_minilm(minilm_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(minilm_path))
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(str(minilm_path), num_labels=2).eval()
    inputs = dict(tok(["a gripping , funny film .", "dull"], padding=True, return_tensors="pt"))
    w = get_lor2c_model(copy.deepcopy(base), LoR2CConfig(spans=[[0, 0], [1, 3], [5, 5]], dropout=0.0)).eval()
    _randomise(w, scale=0.05)
    with torch.no_grad():
        got = w(**inputs).logits
    want = _direct_forward(base, w, inputs)
    assert (got - want).abs().max().item() < 1e-5
    assert w.shape.num_layers == 6 and w.shape.hidden_size == 384


@pytest.mark.parametrize("arch", ARCHS)
def test_zero_B_is_identity_and_gradients_flow(arch):
    base = tiny_model(arch).eval()
    inputs = _inputs()
    with torch.no_grad():
        plain = base(**inputs).logits
    w = get_lor2c_model(copy.deepcopy(base), LoR2CConfig(dropout=0.1)).eval()
    with torch.no_grad():
        assert torch.equal(w(**inputs).logits, plain)
    w.train()
    out = w(**inputs, labels=torch.tensor([0, 1, 1])).loss
    out.backward()
    for b in w.bypasses:
        assert b.B.grad is not None and b.B.grad.abs().sum() > 0   # B gets gradient at once
        assert b.A.grad is not None                                   # A is in the graph (zero while B = 0)
    backbone = [n for n, p in w.base_model.named_parameters()
                if not any(n.startswith(h + ".") for h in w.head_modules)]
    assert backbone
    for n, p in w.base_model.named_parameters():
        if n in backbone:
            assert not p.requires_grad and p.grad is None, n
    # after B moves, A gets gradient too
    _randomise(w, scale=0.1)
    w.zero_grad()
    w(**inputs, labels=torch.tensor([0, 1, 1])).loss.backward()
    assert all(b.A.grad.abs().sum() > 0 for b in w.bypasses)


@pytest.mark.parametrize("arch", ["bert", "llama", "gpt2"])
def test_gradient_checkpointing_gives_same_gradients(arch):
    base = tiny_model(arch)
    inputs = _inputs()
    labels = torch.tensor([0, 1, 1])
    grads = []
    for ckpt in (False, True):
        m = copy.deepcopy(base)
        if ckpt:
            m.gradient_checkpointing_enable()
        w = get_lor2c_model(m, LoR2CConfig(spans=[[0, 1], [2, 2], [3, 3]], dropout=0.0))
        _randomise(w, seed=3, scale=0.1)
        w.train()
        w(**inputs, labels=labels).loss.backward()
        grads.append([p.grad.clone() for p in w.adapter_parameters()])
    for g0, g1 in zip(*grads):
        assert torch.allclose(g0, g1, atol=1e-6)


def test_unknown_architecture_is_a_clear_error():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.ReLU()])

    with pytest.raises(LayerStackError, match="layers_path"):
        find_layer_stack(Odd())
    with pytest.raises(LayerStackError, match="layers_path='nope'"):
        find_layer_stack(tiny_model("bert"), "nope")
    # an explicit path works for anything with a ModuleList of blocks
    path, layers = find_layer_stack(tiny_model("bert"), "bert.encoder.layer")
    assert len(layers) == 4


@pytest.mark.parametrize("bad,match", [
    (dict(rank=0), "rank"), (dict(alpha=-1.0), "alpha"), (dict(dropout=1.0), "dropout"),
    (dict(spans=[[1, 0]]), "spans"), (dict(spans=[[0, 2], [2, 3]]), "overlap"),
    (dict(spans=[[0, 9]]), "last layer"), (dict(ranks=[2]), "explicit spans"),
    (dict(spans=[[0, 0], [1, 1]], ranks=[2]), "2 spans"), (dict(merge_criterion="max"), "merge_criterion"),
    (dict(share_a=True, spans=[[0, 0], [1, 1]], ranks=[2, 4]), "shared A"), (dict(inject_targets=[]), "inject_targets"),
    # every bypass would score 1.0: the top-k share of at most k singular values
    (dict(rank=2, merge_criterion="topk", sfs_k=2), "sfs_k"), (dict(rank=4, merge_criterion="topk", sfs_k=7), "sfs_k"),
    (dict(spans=[[0, 0], [1, 1]], ranks=[8, 2], merge_criterion="topk", sfs_k=3), "sfs_k=3.*smallest bypass rank \\(2\\)"),
    # which bypass goes would decide the final count
    (dict(spans=[[0, 0], [1, 1]], ranks=[2, 4], merge_count=1), "ranks"),
    (dict(spans=[[0, 0], [1, 1]], ranks=[2, 4], inject_count=1), "ranks"),
])
def test_config_validation_names_the_field(bad, match):
    with pytest.raises(ConfigError, match=match):
        LoR2CConfig(**bad).validate(num_layers=4)


def test_config_json_round_trip(tmp_path):
    cfg = LoR2CConfig(spans=[[0, 1], [3, 5]], ranks=[4, 4], alphas=[8.0, 16.0], share_a=False, merge_count=1,
                      merge_criterion="topk", sfs_k=3, inject_count=1, inject_rank=2, injected=[2])
    assert LoR2CConfig.from_json(cfg.to_json()) == cfg
    cfg.to_json(tmp_path / "c.json")
    assert LoR2CConfig.from_json(tmp_path / "c.json") == cfg
    with pytest.raises(ConfigError, match="unknown LoR2C config key"):
        LoR2CConfig.from_dict({"rank": 4, "rnak": 3})


# ---- exact parameter count ------------------------------------------------------------------------
@st.composite
def _random_setup(draw):
    arch = draw(st.sampled_from(["bert", "roberta", "gpt2", "llama"]))
    layers = draw(st.integers(2, 6))
    cuts, k = [], 0
    use_default = draw(st.booleans())
    while k < layers and not use_default:
        length = draw(st.integers(1, 3))
        if draw(st.booleans()):
            cuts.append([k, min(k + length - 1, layers - 1)])
        k += length
    spans = None if use_default or not cuts else cuts
    share = draw(st.booleans())
    ranks = None
    if spans is not None and not share and draw(st.booleans()):
        ranks = [draw(st.integers(1, 6)) for _ in spans]
    rank = draw(st.integers(1, 8))
    smallest = min(ranks) if ranks else rank
    topk = smallest > 1 and draw(st.booleans())
    restructure = ranks is None or len(set(ranks)) == 1  # unequal ranks cannot merge or inject
    cfg = LoR2CConfig(spans=spans, rank=rank, ranks=ranks, share_a=share,
                      alphas=None, dropout=0.0, max_merge_span=draw(st.integers(1, 4)),
                      inject_rank=draw(st.one_of(st.none(), st.integers(1, 5))),
                      inject_targets=draw(st.sampled_from([["query", "value"], ["query"], ["value", "key"]])),
                      merge_criterion="topk" if topk else "mean",
                      sfs_k=draw(st.integers(1, smallest - 1)) if topk else 2,
                      merge_count=draw(st.integers(0, 4)) if restructure else 0,
                      inject_count=draw(st.integers(0, 3)) if restructure else 0)
    ops = draw(st.lists(st.sampled_from(["merge", "inject"]), max_size=5))
    order = draw(st.randoms(use_true_random=False))
    return arch, layers, cfg, ops, order


def _real_adapter_params(w: LoR2CModel) -> int:
    head = {id(p) for p in w.head_state_dict().values()}
    return sum(p.numel() for p in w.parameters() if p.requires_grad and id(p) not in head)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_random_setup())
def test_analytic_count_equals_real_count(setup):
    arch, layers, cfg, ops, _ = setup
    model = tiny_model(arch, layers=layers)
    shape = ModelShape.from_model(model, cfg)
    predicted = count_params(cfg, shape)
    w = get_lor2c_model(model, cfg)
    assert predicted == _real_adapter_params(w) == w.num_adapter_params()
    assert w.num_head_params() == shape.head_params
    trainable = sum(p.numel() for p in w.parameters() if p.requires_grad)
    assert trainable == predicted + shape.head_params  # nothing of the backbone trains
    for op in ops:
        _randomise(w, seed=len(w.history))
        getattr(w, op)()
        assert count_params(w.lor2c_config, shape) == _real_adapter_params(w) == w.count_params()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_random_setup())
def test_planned_final_equals_trained_params(setup):
    """The planned operations all succeed, in any order and whatever the (random) spectrum picks, and
    end at the planned count; no state on the way exceeds the planned peak."""
    arch, layers, cfg, _, order = setup
    model = tiny_model(arch, layers=layers)
    shape = ModelShape.from_model(model, cfg)
    plan = planned_params(cfg, shape)
    merges, injects = guaranteed_events(cfg, layers)
    assert merges <= cfg.merge_count and injects <= cfg.inject_count
    w = get_lor2c_model(model, cfg)
    assert plan["initial"] == _real_adapter_params(w) <= plan["peak"]
    schedule = ["merge"] * merges + ["inject"] * injects
    order.shuffle(schedule)
    for step, op in enumerate(schedule):
        _randomise(w, seed=order.randrange(1 << 30))
        assert getattr(w, op)() is not None, f"planned {op} #{step} of {schedule} refused at {w.spans}"
        assert _real_adapter_params(w) <= plan["peak"]
    assert _real_adapter_params(w) == plan["final"]


def _every_outcome(config: LoR2CConfig, num_layers: int) -> tuple[int, int]:
    """Reference for guaranteed_events by brute force: play out every pick and every interleaving."""
    cap, blocked = config.max_merge_span, set(config.injected)

    def succeed(spans: tuple, merges: int, injects: int) -> bool:
        if merges:
            nxt = [spans[:n] + ((spans[n][0], spans[n + 1][1]),) + spans[n + 2:] for n in range(len(spans) - 1)
                   if spans[n + 1][0] == spans[n][1] + 1 and spans[n + 1][1] - spans[n][0] + 1 <= cap]
            if not nxt or not all(succeed(x, merges - 1, injects) for x in nxt):
                return False
        if injects:
            nxt = [spans[:n] + spans[n + 1:] for n, (i, j) in enumerate(spans) if i == j and i not in blocked]
            if not nxt or not all(succeed(x, merges, injects - 1) for x in nxt):
                return False
        return True

    start = tuple(tuple(s) for s in config.resolved_spans(num_layers))
    merges = next(m for m in range(config.merge_count, -1, -1) if succeed(start, m, 0))
    injects = next(i for i in range(config.inject_count, -1, -1) if succeed(start, merges, i))
    return merges, injects


@st.composite
def _structures(draw):
    layers = draw(st.integers(1, 8))
    spans, k = [], 0
    while k < layers:
        length = draw(st.integers(1, 3))
        if draw(st.integers(0, 3)):
            spans.append([k, min(k + length - 1, layers - 1)])
        k += length + draw(st.sampled_from([0, 0, 0, 1]))
    injected = sorted(draw(st.sets(st.integers(0, layers - 1), max_size=2)))
    return layers, LoR2CConfig(spans=spans or None, injected=injected, max_merge_span=draw(st.integers(1, 5)),
                               merge_count=draw(st.integers(0, 5)), inject_count=draw(st.integers(0, 4)))


@settings(max_examples=400, deadline=None)
@given(_structures())
def test_guaranteed_events_match_every_outcome(structure):
    layers, cfg = structure
    assert guaranteed_events(cfg, layers) == _every_outcome(cfg, layers)


def test_guaranteed_events_examples():
    # with a cap of 2, merging [1]+[2] first leaves no pair: only one merge is sure, not the three asked
    singles = LoR2CConfig(spans=[[0, 0], [1, 1], [2, 2], [3, 3]], max_merge_span=2, merge_count=3)
    assert guaranteed_events(singles, 4) == (1, 0)
    # a gap or an injected layer between two bypasses: nothing to merge
    assert guaranteed_events(LoR2CConfig(spans=[[0, 0], [2, 2]], merge_count=1), 3) == (0, 0)
    # merges are settled first: 3 merges of 4 singles leave no injection that is sure to find a single
    assert guaranteed_events(LoR2CConfig(merge_count=3, inject_count=1), 4) == (3, 0)
    # two injections on layers 1 and 2 would leave [0] and [3] apart: the merge is sure with one only
    assert guaranteed_events(LoR2CConfig(merge_count=1, inject_count=2), 4) == (1, 1)
    assert guaranteed_events(LoR2CConfig(merge_count=1, inject_count=2), 5) == (1, 1)  # [0] [2] [4] left
    assert guaranteed_events(LoR2CConfig(merge_count=1, inject_count=2), 6) == (1, 2)
    # large models stay fast (the search clamps every trial with this)
    assert guaranteed_events(LoR2CConfig(merge_count=20, inject_count=20, max_merge_span=5), 48) == (20, 8)
    # 6 singles, cap 4: merges may end at [0] [1-4] [5], after 3 merges
    assert structure_limits(LoR2CConfig(rank=4, merge_criterion="topk", merge_count=9), 6) == {
        "merge_count": 3, "inject_count": 0, "sfs_k": 3}


def test_planned_params_counts_only_merges_that_can_happen():
    """The issue's example: the one merge would span 6 layers (cap 4), so the adapter keeps 128."""
    from transformers import BertConfig, BertForSequenceClassification

    model = BertForSequenceClassification(BertConfig(
        vocab_size=101, hidden_size=16, num_hidden_layers=6, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=64))
    cfg = LoR2CConfig(spans=[[0, 2], [3, 5]], rank=2, merge_count=1, max_merge_span=4)
    shape = ModelShape.from_model(model, cfg)
    assert shape.hidden_size == 16
    w = get_lor2c_model(model, cfg)
    assert w.merge() is None
    assert planned_params(cfg, shape) == {"initial": 128, "final": 128, "peak": 128}


# ---- merge / inject ---------------------------------------------------------------------------------
def _plant(w: LoR2CModel, strengths):
    """Give bypass n an update whose singular values all equal strengths[n]."""
    with torch.no_grad():
        for b, s in zip(w.bypasses, strengths):
            d, r = b.B.shape
            q, _ = torch.linalg.qr(torch.randn(d, d))
            b.A.copy_(q[:r])          # orthonormal rows
            b.B.copy_(q[:, :r] * s)   # B @ A has r singular values equal to s


def test_merge_picks_weakest_adjacent_pair_and_keeps_training():
    w = get_lor2c_model(tiny_model("bert", layers=6), LoR2CConfig(rank=4, dropout=0.0, max_merge_span=3))
    _plant(w, [5.0, 4.0, 0.5, 0.2, 3.0, 6.0])
    lower_a, lower_b = w.bypasses[2].A, w.bypasses[2].B
    event = w.merge()
    assert event["op"] == "merge" and event["spans"] == [[2, 2], [3, 3]] and event["into"] == [2, 3]
    assert w.spans == [[0, 0], [1, 1], [2, 3], [4, 4], [5, 5]]
    assert w.lor2c_config.spans == w.spans
    # the merged bypass is the lower one's very parameters: an optimiser holding them keeps training it
    assert w.bypasses[2].A is lower_a and w.bypasses[2].B is lower_b
    assert w.bypasses[2].first == 2 and w.bypasses[2].last == 3
    # next weakest: (2..3 at 0.5) + (1 at 4.0) would make span 3 (allowed), (2..3) + (4) too; pick min sum
    event = w.merge()
    assert event["into"] == [2, 4]  # 0.5 + 3.0 < 4.0 + 0.5
    # the max span length caps merges
    w2 = get_lor2c_model(tiny_model("bert", layers=4), LoR2CConfig(spans=[[0, 1], [2, 3]], max_merge_span=3))
    assert w2.merge() is None


def test_merge_needs_consecutive_layers():
    """The reference code's rule: the upper span starts on the layer right after the lower one ends."""
    w = get_lor2c_model(tiny_model("bert"), LoR2CConfig(spans=[[0, 0], [2, 2]], rank=2, merge_count=1))
    assert w.merge_candidates() == [] and w.merge() is None and w.spans == [[0, 0], [2, 2]]
    w = get_lor2c_model(tiny_model("bert", layers=5), LoR2CConfig(rank=4, dropout=0.0, max_merge_span=3))
    _plant(w, [5.0, 4.0, 0.2, 9.0, 0.1])
    assert w.inject()["layer"] == 3
    # [2] + [4] is the weakest pair but would span the injected layer 3
    assert w.merge()["into"] == [1, 2]
    assert w.merge()["into"] == [0, 2]
    assert w.merge() is None and w.spans == [[0, 2], [4, 4]]


def test_topk_criterion():
    w = get_lor2c_model(tiny_model("bert", layers=2), LoR2CConfig(rank=4, merge_criterion="topk", sfs_k=1))
    with torch.no_grad():
        for b, sv in zip(w.bypasses, ([4.0, 0.1, 0.1, 0.1], [1.0, 1.0, 1.0, 1.0])):
            d, r = b.B.shape
            q, _ = torch.linalg.qr(torch.randn(d, d))
            b.A.copy_(q[:r])
            b.B.copy_(q[:, :r] * torch.tensor(sv))
    scores = [s["score"] for s in w.bypass_scores()]
    assert scores[0] == pytest.approx(4.0 / 4.3, rel=1e-4)
    assert scores[1] == pytest.approx(0.25, rel=1e-4)
    means = [s["score"] for s in w.bypass_scores(criterion="mean")]
    assert means[0] == pytest.approx(4.3 / 32, rel=1e-4)  # mean over all d = 32 singular values


def test_inject_picks_strongest_single_layer_bypass_and_trains():
    w = get_lor2c_model(tiny_model("bert", layers=4), LoR2CConfig(spans=[[0, 1], [2, 2], [3, 3]], rank=4, dropout=0.0))
    _plant(w, [9.0, 1.0, 3.0])  # the merged [0, 1] is strongest but is never injected
    before = w.num_adapter_params()
    event = w.inject()
    assert event["op"] == "inject" and event["layer"] == 3
    assert w.spans == [[0, 1], [2, 2]] and w.lor2c_config.injected == [3]
    assert sorted(w.injections.keys()) == ["layer3:attention/self/query", "layer3:attention/self/value"]
    assert w.num_adapter_params() == before  # rank r/2 on q and v costs what the bypass cost
    opt = torch.optim.AdamW(w.trainable_parameters(), lr=1e-2)
    lora = w.injections["layer3:attention/self/query"]
    b0, a0 = lora.B.detach().clone(), lora.A.detach().clone()
    inputs = _inputs()
    for _ in range(2):
        opt.zero_grad()
        w(**inputs, labels=torch.tensor([0, 1, 1])).loss.backward()
        opt.step()
    assert not torch.equal(lora.B, b0) and not torch.equal(lora.A, a0)
    # the injected LoRA is really in the forward pass
    with torch.no_grad():
        out1 = w(**inputs).logits
        lora.B.zero_()
        w.injections["layer3:attention/self/value"].B.zero_()
        out2 = w(**inputs).logits
    assert (out1 - out2).abs().max() > 0


def test_share_a_uses_one_A():
    w = get_lor2c_model(tiny_model("bert"), LoR2CConfig(share_a=True, rank=4))
    assert all(b.A is None for b in w.bypasses) and w.shared_A.shape == (4, 32)
    assert w.num_adapter_params() == 4 * 32 + 4 * 32 * 4


# ---- save / load ------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama"])
def test_save_load_round_trip(tmp_path, arch):
    base = tiny_model(arch, seed=5)
    pristine = copy.deepcopy(base.state_dict())
    w = get_lor2c_model(base, LoR2CConfig(rank=4, dropout=0.0, merge_count=1, inject_count=1))
    _randomise(w, scale=0.2)
    w.merge()
    w.inject()
    _randomise(w, seed=9, scale=0.2)
    with torch.no_grad():
        for p in w.head_state_dict().values():
            p.add_(0.5)
    w.eval()
    inputs = _inputs()
    with torch.no_grad():
        want = w(**inputs).logits
    w.save_pretrained(tmp_path / "adapter")
    meta = json.loads((tmp_path / "adapter" / "lor2c_config.json").read_text())
    assert meta["lor2c"]["spans"] == w.spans and meta["lor2c"]["injected"] == w.lor2c_config.injected
    assert [e["op"] for e in meta["history"]] == ["merge", "inject"]
    fresh = tiny_model(arch, seed=123)
    fresh.load_state_dict(pristine)
    w2 = LoR2CModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    with torch.no_grad():
        got = w2(**inputs).logits
    assert torch.equal(got, want)


def test_corrupt_or_foreign_folders_are_clear_errors(tmp_path):
    w = get_lor2c_model(tiny_model("bert"), LoR2CConfig())
    folder = w.save_pretrained(tmp_path / "a")
    with pytest.raises(AdapterLoadError, match="does not exist"):
        LoR2CModel.from_pretrained(tiny_model("bert"), tmp_path / "missing")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (tmp_path / "foreign" / "adapter_model.safetensors").write_bytes(b"")
    with pytest.raises(AdapterLoadError, match="not an autolor2c adapter"):
        LoR2CModel.from_pretrained(tiny_model("bert"), tmp_path / "foreign")
    weights = folder / "lor2c_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(AdapterLoadError, match="safetensors"):
        LoR2CModel.from_pretrained(tiny_model("bert"), folder)
    (folder / "lor2c_config.json").write_text("{not json")
    with pytest.raises(AdapterLoadError, match="invalid JSON"):
        LoR2CModel.from_pretrained(tiny_model("bert"), folder)
    # a config for a different structure than the weights
    w.save_pretrained(tmp_path / "b")
    meta = json.loads((tmp_path / "b" / "lor2c_config.json").read_text())
    meta["lor2c"]["rank"] = 2
    (tmp_path / "b" / "lor2c_config.json").write_text(json.dumps(meta))
    with pytest.raises(AdapterLoadError, match="shape"):
        LoR2CModel.from_pretrained(tiny_model("bert"), tmp_path / "b")


def test_saved_folder_respects_the_umask(tmp_path):
    """Not mkdtemp's 0700: other users of a shared machine may read a saved adapter."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        folder = get_lor2c_model(tiny_model("bert"), LoR2CConfig()).save_pretrained(tmp_path / "a")
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # no temporary sibling left behind


def test_newer_format_version_is_a_clear_error(tmp_path):
    folder = get_lor2c_model(tiny_model("bert"), LoR2CConfig()).save_pretrained(tmp_path / "a")
    meta = json.loads((folder / "lor2c_config.json").read_text())
    assert meta["format_version"] == 1
    for version, match in ((2, "format_version 2 is newer.*upgrade autolor2c"), ("1", "format_version '1'"),
                           (None, "format_version None")):
        meta["format_version"] = version
        (folder / "lor2c_config.json").write_text(json.dumps(meta))
        with pytest.raises(AdapterLoadError, match=match):
            LoR2CModel.from_pretrained(tiny_model("bert"), folder)


def test_head_is_pooler_plus_classifier_and_can_be_named():
    w = get_lor2c_model(tiny_model("bert"), LoR2CConfig())
    assert w.head_modules == ["bert.pooler", "classifier"]
    pooler = w.base_model.bert.pooler.dense
    assert pooler.weight.requires_grad and "head.bert.pooler.dense.weight" in w.head_state_dict()
    assert w.num_head_params() == ModelShape.from_model(tiny_model("bert")).head_params == sum(
        p.numel() for p in pooler.parameters()) + sum(p.numel() for p in w.base_model.classifier.parameters())
    only = get_lor2c_model(tiny_model("bert"), LoR2CConfig(head_modules=["classifier"]))
    assert not only.base_model.bert.pooler.dense.weight.requires_grad
    assert get_lor2c_model(tiny_model("gpt2"), LoR2CConfig()).head_modules == ["score"]  # no pooler there
    with pytest.raises(LayerStackError, match="bert.nope"):
        get_lor2c_model(tiny_model("bert"), LoR2CConfig(head_modules=["bert.nope"]))


def test_folder_is_lor2c_own_and_not_taken_for_peft(tmp_path):
    """The folder has LoR2C's own file names: transformers' PEFT detection does not claim it."""
    from transformers.utils import find_adapter_config_file

    folder = get_lor2c_model(tiny_model("bert"), LoR2CConfig()).save_pretrained(tmp_path / "a")
    assert sorted(p.name for p in folder.iterdir()) == ["lor2c_config.json", "lor2c_model.safetensors"]
    assert find_adapter_config_file(str(folder)) is None


def test_folder_saved_before_head_was_in_config_still_loads(tmp_path):
    """Older folders used PEFT's file names (adapter_config.json + adapter_model.safetensors) and kept the
    head only in the top-level ``head_modules``; the default has since grown. They load as they are."""
    w = get_lor2c_model(tiny_model("bert"), LoR2CConfig(head_modules=["classifier"]))
    _randomise(w, scale=0.2)
    folder = w.save_pretrained(tmp_path / "old")
    meta = json.loads((folder / "lor2c_config.json").read_text())
    assert meta["lor2c"]["head_modules"] == ["classifier"]  # now saved explicitly
    meta["lor2c"]["head_modules"] = None
    (folder / "lor2c_config.json").unlink()
    (folder / "adapter_config.json").write_text(json.dumps(meta))
    (folder / "lor2c_model.safetensors").rename(folder / "adapter_model.safetensors")
    w2 = LoR2CModel.from_pretrained(tiny_model("bert"), folder)
    assert w2.head_modules == ["classifier"]
    inputs = _inputs()
    with torch.no_grad():
        assert torch.equal(w2.eval()(**inputs).logits, w.eval()(**inputs).logits)


def test_method_imports_nothing_else_of_the_project():
    # but the one base error (autolor2c.errors imports nothing)
    code = ("import sys, autolor2c.lor2c; "
            "bad = [m for m in sys.modules if m.startswith('autolor2c.') and not m.startswith('autolor2c.lor2c') "
            "and m != 'autolor2c.errors']; "
            "bad += [m for m in ('optuna', 'datasets', 'ray', 'autolor2c.cli') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
