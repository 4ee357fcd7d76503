"""The super-adapter with a structure switched on computes what a LoR2C model of that structure computes with
the same weights (nested rank prefixes, own and shared A, injected LoRA), and its merge/inject steps follow
the method's rules."""

import pytest
import torch

from autolor2c.lor2c import ConfigError, LoR2CConfig, LoR2CModel
from autolor2c.lor2c.super_adapter import SuperAdapter
from autolor2c.testing import inputs, tiny_model

STRUCTURES = [
    LoR2CConfig(spans=[[0, 0], [1, 2], [3, 3]], rank=3, alpha=5.0, dropout=0.1),
    LoR2CConfig(spans=[[0, 1], [2, 3]], rank=6, alpha=12.0, share_a=True),
    LoR2CConfig(spans=[[1, 1], [3, 3]], rank=2, injected=[0, 2], inject_rank=4, inject_alpha=7.0),
    LoR2CConfig(spans=[[0, 0], [2, 2]], ranks=[5, 1], alphas=[3.0, 9.0]),
    LoR2CConfig(spans=[], injected=[1], rank=4),
]


def _super(arch="bert", seed=0):
    base = tiny_model(arch, layers=4, seed=seed)
    sup = SuperAdapter(base, max_span=3, max_rank=8, max_lora_rank=4)
    g = torch.Generator().manual_seed(seed + 5)
    with torch.no_grad():  # B starts at zero: give every tensor values so that a wrong slice shows
        for p in sup.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return sup


@pytest.mark.parametrize("arch", ["bert", "llama"])
@pytest.mark.parametrize("k", range(len(STRUCTURES)))
def test_switched_on_structure_computes_what_the_lor2c_model_computes(arch, k):
    sup = _super(arch).eval()
    cfg = STRUCTURES[k]
    sup.activate(cfg)
    x = inputs()
    with torch.no_grad():
        want = sup(**x).logits
    ref = LoR2CModel(tiny_model(arch, layers=4, seed=0), cfg).eval()  # the same frozen weights, no hooks of sup
    state = sup.structure_state()
    own = {**ref.adapter_state_dict(), **ref.head_state_dict()}
    assert set(state) == set(own)
    with torch.no_grad():
        for name, p in own.items():
            p.copy_(state[name])
    with torch.no_grad():
        got = ref(**x).logits
    assert torch.allclose(got, want, atol=1e-5), (got, want)
    assert sum(t.numel() for n, t in state.items() if not n.startswith("head.")) == ref.count_params()


def test_a_larger_rank_extends_a_smaller_one():
    """Rank r reads the first r rows of A and columns of B: rank 3 and rank 8 share rank 3's weights."""
    sup = _super()
    small = sup.structure_state(LoR2CConfig(spans=[[0, 1]], rank=3))
    large = sup.structure_state(LoR2CConfig(spans=[[0, 1]], rank=8))
    assert torch.equal(large["bypasses.0.A"][:3], small["bypasses.0.A"])
    assert torch.equal(large["bypasses.0.B"][:, :3], small["bypasses.0.B"])


def test_only_the_active_structure_gets_gradients():
    sup = _super().train()
    sup.activate(LoR2CConfig(spans=[[1, 2]], rank=4, injected=[0], inject_rank=2))
    sup(**inputs(), labels=torch.tensor([0, 1, 0])).loss.backward()
    active = {id(p) for p in sup.active_parameters()}
    for name, p in sup.named_parameters():
        if p.requires_grad:
            assert (p.grad is not None and p.grad.abs().sum() > 0) == (id(p) in active), name
    assert sup.A["1-2"].grad[4:].abs().sum() == 0  # rows past the active rank stay untouched


def test_outside_the_super_adapter_is_refused_by_name():
    sup = _super()
    with pytest.raises(ConfigError, match="max_rank"):
        sup.activate(LoR2CConfig(spans=[[0, 0]], rank=9))
    with pytest.raises(ConfigError, match="max_span"):
        sup.activate(LoR2CConfig(spans=[[0, 3]], rank=2))
    with pytest.raises(RuntimeError, match="activate"):
        SuperAdapter(tiny_model("bert"), max_span=1, max_rank=2, max_lora_rank=1)(**inputs())


def test_merge_and_inject_follow_the_spectra():
    sup = _super()
    cfg = LoR2CConfig(spans=[[0, 0], [1, 1], [2, 2], [3, 3]], rank=4, max_merge_span=2)
    with torch.no_grad():  # make bypass [2, 2] the weakest and [1, 1] the strongest
        sup.B["2-2"].mul_(1e-3)
        sup.B["3-3"].mul_(1e-3)
        sup.B["1-1"].mul_(10)
    merged = sup.merged(cfg)
    assert merged.spans == [[0, 0], [1, 1], [2, 3]]
    injected = sup.injected(cfg)
    assert injected.spans == [[0, 0], [2, 2], [3, 3]] and injected.injected == [1]
    assert sup.merged(LoR2CConfig(spans=[[0, 1], [2, 3]], rank=4, max_merge_span=3)) is None


def test_a_saved_super_adapter_scores_what_it_scored_before_it_was_saved(glue_dir, tmp_path):
    """The cache round trip: trained (a few steps on real STS-B rows), saved with safetensors, read back on a
    fresh backbone, it gives every structure the same one-shot score."""
    from autolor2c.train import TrainArgs
    from autolor2c.train.oneshot import load_super_adapter, save_super_adapter, score_structure, train_super_adapter

    args = TrainArgs(max_train_samples=64, max_eval_samples=48, min_steps=0, max_steps=3, batch_size=16,
                     selection_fraction=0.0, progress=False)
    shapes = [LoR2CConfig(spans=[[0, 1], [2, 2]], rank=4, inject_count=1, max_merge_span=2),
              LoR2CConfig(spans=[[3, 5]], rank=2, share_a=True, max_merge_span=3)]
    run = train_super_adapter("stsb", lambda rng: rng.choice(shapes), shapes, args, max_span=3, max_rank=4,
                              max_lora_rank=2, data_dir=str(glue_dir))
    before = [score_structure(run, c)["score"] for c in shapes]
    save_super_adapter(run, tmp_path / "sa", {"identity": {"test": 1}})
    again = load_super_adapter(tmp_path / "sa", "stsb", args, data_dir=str(glue_dir))
    after = [score_structure(again, c)["score"] for c in shapes]
    assert after == pytest.approx(before, abs=1e-6) and len(set(before)) == 2
    assert score_structure(run, shapes[0])["final_structure"]["injected"]  # the injection was decided, by spectra
