"""Search spaces: the shipped YAML files, suggestion invariants, round trips, and load-time errors."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.samplers import RandomSampler
from optuna.trial import FixedTrial

from autolor2c.errors import UserError
from autolor2c.lor2c.config import LoR2CConfig
from autolor2c.lor2c.structure import guaranteed_events
from autolor2c.search.space import (BUILTIN_DIR, SearchSpace, TrialPlan, default_space_path, is_dead,
                                    list_builtin_spaces, load_space, spans_from_mask)

optuna.logging.set_verbosity(optuna.logging.WARNING)

BUILTINS = ("lor2c_full", "lor2c_only", "lora")


def _space(tmp_path: Path, text: str, name: str = "space.yaml") -> SearchSpace:
    p = tmp_path / name
    p.write_text(text)
    return load_space(p)


def _check_spans(spans, num_layers):
    prev = -1
    for i, j in spans:
        assert 0 <= i <= j < num_layers
        assert i > prev, f"spans overlap or are unsorted: {spans}"
        prev = j


# --------------------------------------------------------------------------------------------------
# Builtins
# --------------------------------------------------------------------------------------------------
def test_builtins_listed_and_default():
    assert set(BUILTINS) <= set(list_builtin_spaces())
    assert default_space_path() == BUILTIN_DIR / "lor2c_full.yaml" and default_space_path().is_file()
    assert load_space(default_space_path()).name == "lor2c_full"


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_loads_by_name_and_path(name):
    by_name = load_space(name)
    by_path = load_space(str(BUILTIN_DIR / f"{name}.yaml"))
    assert by_name.name == by_path.name == name
    assert by_name.params == by_path.params
    assert by_name.method == ("lora" if name == "lora" else "lor2c")


@pytest.mark.parametrize("name", BUILTINS)
@pytest.mark.parametrize("num_layers", [1, 6, 12])
def test_builtin_suggests_valid_plans(name, num_layers):
    space = load_space(name)
    study = optuna.create_study(sampler=RandomSampler(seed=num_layers))
    for _ in range(50):
        trial = study.ask()
        plan = space.suggest(trial, num_layers)
        params = trial.params
        assert plan.method == space.method and plan.num_layers == num_layers and plan.space == name
        if plan.method == "lor2c":
            cfg = plan.adapter
            assert isinstance(cfg, LoR2CConfig)
            cfg.validate(num_layers)
            spans = cfg.resolved_spans(num_layers)
            _check_spans(spans, num_layers)
            # bypasses tile the range between bypass_from and bypass_to, in spans of span_length (cut at its end)
            lo, hi = sorted((params["bypass_from"], params["bypass_to"]))
            assert spans[0][0] in (lo, hi - 1) and spans[-1][1] == hi
            assert all(b[0] == a[1] + 1 for a, b in zip(spans, spans[1:]))
            used_length = plan.clamped.get("span_length", {}).get("used", params["span_length"])
            assert all(j - i + 1 == (1 if "bypass_from" in plan.clamped else used_length) for i, j in spans[:-1])
            assert 2 <= cfg.rank <= 256 and isinstance(cfg.alpha, float) and cfg.dropout == 0.1
            assert 5e-4 <= plan.train["learning_rate"] <= 4e-3
            assert cfg.merge_count <= len(spans) - 1
            assert cfg.inject_count <= sum(1 for i, j in spans if i == j)
            if num_layers > 1:  # no dead structure: some bypass ends below the top whatever merges pick
                assert not is_dead(cfg, num_layers)
            for key, c in plan.clamped.items():
                assert params[key] == c["suggested"] > c["used"]
            if name == "lor2c_only":
                assert cfg.merge_count == 0 and cfg.inject_count == 0
                assert not {"merge_count", "inject_count"} & set(params)
            else:
                # injections exist exactly when the spans are single layers
                assert ("inject_count" in params) == (params["span_length"] == 1)
        else:
            assert {k for k in params if k.startswith("bypass_")} == {f"bypass_{k}" for k in range(num_layers)}
            on = [k for k in range(num_layers) if params[f"bypass_{k}"]] or [num_layers - 1]
            a = plan.adapter
            assert set(a) == {"rank", "alpha", "dropout", "target_modules", "layers"}
            assert a["layers"] == on and a["target_modules"] == ["query", "value"]
            assert a["rank"] in (1, 2, 4, 8, 16) and isinstance(a["alpha"], float)
        # The exporter's path: rebuild from trial.params, and from the stored JSON plan.
        assert space.fixed_plan(params, num_layers) == plan
        assert TrialPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
        study.tell(trial, 0.0)


# --------------------------------------------------------------------------------------------------
# Suggest details
# --------------------------------------------------------------------------------------------------
# The layer-mask encoding that lor2c_full used before bypass_from: still a supported format.
MASK_SPACE = {
    "name": "mask_space", "method": "lor2c",
    "params": {
        "rank": {"type": "categorical", "choices": [2, 4, 8, 16]},
        "alpha": {"type": "categorical", "choices": [8, 16, 32]},
        "dropout": {"type": "float", "low": 0.0, "high": 0.2},
        "share_a": {"type": "categorical", "choices": [False, True]},
        "layers": {"type": "layer_mask"},
        "span_length": {"type": "int", "low": 1, "high": 3},
        "merge_count": {"type": "int", "low": 0, "high": 3},
        "merge_criterion": {"type": "categorical", "choices": ["mean", "topk"], "when": {"merge_count": ">0"}},
        "sfs_k": {"type": "int", "low": 1, "high": 4, "when": {"merge_criterion": "topk"}},
        "inject_count": {"type": "int", "low": 0, "high": 2},
        "inject_rank": {"type": "categorical", "choices": [2, 4, 8], "when": {"inject_count": ">0"}},
        "learning_rate": {"type": "float", "low": 1.0e-4, "high": 5.0e-3, "log": True},
    },
}


def _mask_space():
    from autolor2c.search.space import SearchSpace

    return SearchSpace.from_dict(MASK_SPACE, source="mask_space")


def test_all_off_mask_forces_top_layer():
    space = _mask_space()
    params = {f"bypass_{k}": False for k in range(6)}
    params.update(rank=4, alpha=16, dropout=0.1, share_a=False, span_length=2, merge_count=2,
                  merge_criterion="mean", inject_count=1, inject_rank=2, learning_rate=1e-3)
    plan = space.fixed_plan(params, 6)
    assert plan.adapter.spans == [[5, 5]]
    assert plan.clamped["layers"] == {"suggested": [], "used": [5]}
    assert plan.clamped["merge_count"] == {"suggested": 2, "used": 0}
    assert plan.adapter.inject_count == 1 and "inject_count" not in plan.clamped
    lora = load_space("lora").fixed_plan(
        {**{f"bypass_{k}": False for k in range(3)}, "rank": 2, "alpha": 8, "dropout": 0.0,
         "learning_rate": 1e-3}, 3)
    assert lora.adapter["layers"] == [2]


def test_fixed_plan_rejects_missing_and_extra_params():
    space = _mask_space()
    study = optuna.create_study(sampler=RandomSampler(seed=0))
    trial = study.ask()
    space.suggest(trial, 6)
    params = dict(trial.params)
    with pytest.raises(UserError, match="do not fit"):
        space.fixed_plan({k: v for k, v in params.items() if k != "rank"}, 6)
    with pytest.raises(UserError, match="bypass_5"):
        space.fixed_plan(params, 5)  # trial from a 6-layer model
    assert space.fixed_plan(params, 5, strict=False).num_layers == 5
    with pytest.raises(UserError, match="not_a_param"):
        space.fixed_plan({**params, "not_a_param": 2}, 6)


def test_conditions_comparisons_and_lists(tmp_path):
    space = _space(tmp_path, """
method: lor2c
params:
  rank: {type: categorical, choices: [2, 4, 8, 16]}
  span_length: {type: int, low: 1, high: 3, when: {rank: "<8"}}
  dropout: {type: float, low: 0.0, high: 0.3, when: {rank: [4, 16]}}
  inject_rank: {type: categorical, choices: [1, 2], when: {rank: ">=8", span_length: 1}}
  max_merge_span: {type: int, low: 2, high: 5, when: {inject_rank: null}}
  weight_decay: {type: float, low: 0.0, high: 0.1, when: {rank: 16}}
""")
    for rank in (2, 4, 8, 16):
        trial = FixedTrial({"rank": rank, "span_length": 2, "dropout": 0.2, "inject_rank": 1,
                            "max_merge_span": 3, "weight_decay": 0.01})
        plan = space.suggest(trial, 4)
        used = set(trial.params)
        assert ("span_length" in used) == (rank < 8)
        assert ("dropout" in used) == (rank in (4, 16))
        # span_length is not suggested for rank >= 8, so its default (1) satisfies the condition.
        assert ("inject_rank" in used) == (rank >= 8)
        assert ("max_merge_span" in used) == (rank < 8)
        assert ("weight_decay" in plan.train) == (rank == 16)
        assert plan.adapter.dropout == (0.2 if rank in (4, 16) else LoR2CConfig().dropout)


def test_suggest_order_follows_conditions(tmp_path):
    # A param listed before its condition's target still sees the target's sampled value.
    space = _space(tmp_path, """
params:
  sfs_k: {type: int, low: 1, high: 3, when: {merge_criterion: topk}}
  merge_criterion: {type: categorical, choices: [mean, topk]}
""")
    assert space.order == ("merge_criterion", "sfs_k")
    assert space.suggest(FixedTrial({"merge_criterion": "topk", "sfs_k": 3}), 4).adapter.sfs_k == 3


def test_fixed_values_and_training_keys(tmp_path):
    space = _space(tmp_path, """
name: fixed-demo
method: lor2c
params:
  spans: [[0, 1], [3, 3]]
  ranks: [4, 8]
  alpha: 8
  dropout: 0
  inject_targets: [query, key, value]
  learning_rate: "1e-3"
  batch_size: {type: categorical, choices: [16, 32]}
  epochs: 3
  warmup_ratio: {type: fixed, value: 0.1}
""")
    plan = space.suggest(FixedTrial({"batch_size": 32}), 4)
    assert plan.adapter.spans == [[0, 1], [3, 3]] and plan.adapter.ranks == [4, 8]
    assert plan.adapter.alpha == 8.0 and isinstance(plan.adapter.dropout, float)
    # "1e-3" is a string to PyYAML; float keys accept numeric strings.
    assert plan.train == {"learning_rate": 1e-3, "batch_size": 32, "epochs": 3, "warmup_ratio": 0.1}
    with pytest.raises(UserError, match=r"space\.yaml.*spans.*3-layer"):
        space.suggest(FixedTrial({"batch_size": 32}), 3)


def test_numeric_string_bounds_for_floats(tmp_path):
    # PyYAML reads 1e-4 (no dot) as a string: float bounds accept it.
    space = _space(tmp_path, "params:\n  learning_rate: {type: float, low: 1e-4, high: 1e-2, log: true}\n")
    assert space.params["learning_rate"].low == 1e-4


def test_fixed_layers_list_with_negative_index(tmp_path):
    space = _space(tmp_path, "method: lora\nparams:\n  layers: [0, -1]\n  rank: 4\n")
    assert space.suggest(FixedTrial({}), 6).adapter["layers"] == [0, 5]
    with pytest.raises(UserError, match=r"params\.layers.*twice"):
        _space(tmp_path, "method: lora\nparams:\n  layers: [0, -4]\n", "b.yaml").suggest(FixedTrial({}), 4)
    with pytest.raises(UserError, match=r"params\.layers: layer 7"):
        space_b = _space(tmp_path, "method: lora\nparams:\n  layers: [7]\n", "c.yaml")
        space_b.suggest(FixedTrial({}), 6)


def test_lor2c_defaults_without_layer_keys(tmp_path):
    plan = _space(tmp_path, "params:\n  rank: 4\n  merge_count: 9\n").suggest(FixedTrial({}), 3)
    assert plan.adapter.spans is None and plan.adapter.merge_count == 2
    assert plan.clamped == {"merge_count": {"suggested": 9, "used": 2}}


def test_trial_plan_round_trip_and_errors():
    cfg = LoR2CConfig(spans=[[0, 2], [4, 5]], rank=4, alpha=8.0, share_a=True, merge_count=1)
    plan = TrialPlan("lor2c", cfg, {"learning_rate": 2e-3, "batch_size": 16}, 6, "x",
                     {"merge_count": {"suggested": 3, "used": 1}})
    back = TrialPlan.from_dict(json.loads(json.dumps(plan.to_dict())))
    assert back == plan and back.adapter is not cfg
    lora = TrialPlan("lora", {"rank": 4, "alpha": 8.0, "dropout": 0.1, "target_modules": ["query"],
                              "layers": [0, 1]}, {}, 2, "lora")
    assert TrialPlan.from_dict(json.loads(json.dumps(lora.to_dict()))) == lora
    for bad in ([], {"method": "dora", "adapter": {}}, {"method": "lora", "adapter": {"rank": 1}},
                {"method": "lor2c", "adapter": {"rank": 0}}, {"method": "lor2c", "adapter": {}, "x": 1},
                {"method": "lor2c", "adapter": {"spans": [[0, 7]]}, "num_layers": 6}):
        with pytest.raises(UserError, match="bad trial plan"):
            TrialPlan.from_dict(bad)


# --------------------------------------------------------------------------------------------------
# Load-time errors: one line naming the file and the key
# --------------------------------------------------------------------------------------------------
MALFORMED = [
    ("unknown_top", "name: x\nparamz: {}\nparams: {}\n", "paramz"),
    ("bad_method", "method: dora\nparams: {}\n", "method"),
    ("unknown_type", "params:\n  rank: {type: choice, choices: [1]}\n", "params.rank"),
    ("low_gt_high", "params:\n  dropout: {type: float, low: 0.2, high: 0.1}\n", "params.dropout"),
    ("log_low_zero", "params:\n  learning_rate: {type: float, low: 0, high: 0.1, log: true}\n",
     "params.learning_rate"),
    ("empty_choices", "params:\n  rank: {type: categorical, choices: []}\n", "params.rank"),
    ("choices_not_list", "params:\n  rank: {type: categorical, choices: 4}\n", "params.rank"),
    ("unknown_when_target", "params:\n  sfs_k: {type: int, low: 1, high: 3, when: {merge_crit: topk}}\n",
     "params.sfs_k"),
    ("when_never_holds", "params:\n  merge_criterion: {type: categorical, choices: [mean, topk]}\n"
                         "  sfs_k: {type: int, low: 1, high: 3, when: {merge_criterion: topK}}\n", "params.sfs_k"),
    ("when_bad_comparison", "params:\n  merge_count: {type: int, low: 0, high: 3}\n"
                            "  sfs_k: {type: int, low: 1, high: 3, when: {merge_count: '>x'}}\n", "params.sfs_k"),
    ("when_cycle", "params:\n  rank: {type: categorical, choices: [2, 4], when: {alpha: 8}}\n"
                   "  alpha: {type: categorical, choices: [8, 16], when: {rank: 2}}\n", "params."),
    ("unknown_param", "params:\n  ranq: 4\n", "params.ranq"),
    ("lora_span_length", "method: lora\nparams:\n  span_length: 2\n", "params.span_length"),
    ("param_method", "params:\n  method: lora\n", "params.method"),
    ("unknown_spec_key", "params:\n  rank: {type: int, lo: 1, high: 4}\n", "params.rank"),
    ("int_float_bound", "params:\n  rank: {type: int, low: 1.5, high: 4}\n", "params.rank"),
    ("rank_as_float", "params:\n  rank: {type: float, low: 1, high: 4}\n", "params.rank"),
    ("dropout_one", "params:\n  dropout: {type: float, low: 0.0, high: 1.0}\n", "params.dropout"),
    ("bad_criterion", "params:\n  merge_criterion: {type: categorical, choices: [mean, max]}\n",
     "params.merge_criterion"),
    ("share_a_int", "params:\n  share_a: {type: categorical, choices: [0, 1]}\n", "params.share_a"),
    ("batch_size_zero", "params:\n  batch_size: 0\n", "params.batch_size"),
    ("mask_on_rank", "params:\n  rank: {type: layer_mask}\n", "params.rank"),
    ("layers_categorical", "params:\n  layers: {type: categorical, choices: [1, 2]}\n", "params.layers"),
    ("spans_and_layers", "params:\n  spans: [[0, 1]]\n  layers: {type: layer_mask}\n", "params.spans"),
    ("ranks_without_spans", "params:\n  ranks: [4, 8]\n", "params.ranks"),
    ("no_type", "params:\n  rank: {low: 1, high: 4}\n", "params.rank"),
    ("missing_params", "name: x\nmethod: lor2c\n", "params"),
    ("params_list", "params: [rank]\n", "params"),
    ("step_mismatch", "params:\n  rank: {type: int, low: 1, high: 8, step: 3}\n", "params.rank"),
    ("bad_name", "name: 'a b'\nparams: {}\n", "name"),
    ("not_yaml", "params: {rank: [1, 2\n", "line"),
    ("not_mapping", "- rank\n- alpha\n", "mapping"),
    ("empty_file", "", "mapping"),
]


@pytest.mark.parametrize("case,text,key", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_spaces(tmp_path, case, text, key):
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        load_space(path)
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(str(path)), msg
    assert key in msg, msg


def test_missing_file_and_unknown_builtin(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(UserError, match="nope.yaml: search space file not found"):
        load_space(missing)
    with pytest.raises(UserError, match="lor2c_full"):  # lists the builtins
        load_space("lor2c_fulll")
    with pytest.raises(UserError, match="not a file"):
        load_space(tmp_path)


# --------------------------------------------------------------------------------------------------
# Span construction invariants
# --------------------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(mask=st.lists(st.booleans(), min_size=1, max_size=48), span_length=st.integers(1, 10))
def test_spans_from_mask_invariants(mask, span_length):
    n = len(mask)
    spans = spans_from_mask(mask, span_length)
    _check_spans(spans, n)
    covered = {k for i, j in spans for k in range(i, j + 1)}
    assert {k for k in range(n) if mask[k]} <= covered          # every switched-on layer is covered
    assert all(mask[i] for i, _ in spans)                       # spans start at switched-on layers
    assert all(j - i + 1 <= span_length for i, j in spans)
    # A span is cut short only at the top layer.
    assert all(j - i + 1 == span_length or j == n - 1 for i, j in spans)
    assert (spans == []) == (not any(mask))


@settings(max_examples=100, deadline=None)
@given(mask=st.lists(st.booleans(), min_size=1, max_size=16), span_length=st.integers(1, 3),
       merge_count=st.integers(0, 3), inject_count=st.integers(0, 2))
def test_suggest_never_fails_on_structure(mask, span_length, merge_count, inject_count):
    space = _mask_space()
    n = len(mask)
    params = {f"bypass_{k}": b for k, b in enumerate(mask)}
    params.update(rank=8, alpha=16, dropout=0.1, share_a=True, span_length=span_length,
                  merge_count=merge_count, merge_criterion="topk", sfs_k=2, inject_count=inject_count,
                  inject_rank=4, learning_rate=1e-3)
    plan = space.fixed_plan(params, n, strict=False)  # inactive conditionals are extra: not an error here
    cfg = plan.adapter.validate(n)
    spans = cfg.resolved_spans(n)
    _check_spans(spans, n)
    assert spans == spans_from_mask(mask if any(mask) else [False] * (n - 1) + [True], span_length)
    # clamped to what the method can always carry out (lor2c's rule), sfs_k below the rank
    asked = LoR2CConfig(spans=spans, max_merge_span=cfg.max_merge_span, merge_count=merge_count,
                        inject_count=inject_count)
    assert (cfg.merge_count, cfg.inject_count) == guaranteed_events(asked, n)
    assert cfg.sfs_k == 2


def test_topk_sfs_k_is_clamped_below_the_rank():
    """sfs_k >= rank would score every bypass 1.0; the config now rejects it, so the space clamps it."""
    params = {f"bypass_{k}": True for k in range(6)}
    params.update(rank=2, alpha=16, dropout=0.1, share_a=False, span_length=1, merge_count=1,
                  merge_criterion="topk", sfs_k=4, inject_count=0, learning_rate=1e-3)
    plan = _mask_space().fixed_plan(params, 6, strict=False)
    assert plan.adapter.sfs_k == 1 and plan.clamped["sfs_k"] == {"suggested": 4, "used": 1}


def test_default_space_gives_distinct_structures_and_reaches_past_the_budget():
    """Different structural parameters mean different structures, and a real share of the default space is
    over a 0.1M budget on a 6-layer d=384 model (MiniLM), so the budget binds."""
    from autolor2c.lor2c import ModelShape, planned_params

    space = load_space("lor2c_full")
    shape = ModelShape(num_layers=6, hidden_size=384, proj_shapes={"query": (384, 384), "value": (384, 384)},
                       proj_modules={"query": "query", "value": "value"}, backbone_params=22_000_000, head_params=0)
    seen: dict[tuple, tuple] = {}
    over = 0
    study = optuna.create_study(sampler=RandomSampler(seed=3))
    for _ in range(400):
        trial = study.ask()
        plan = space.suggest(trial, 6)
        p = trial.params
        cfg = plan.adapter
        lo, hi = sorted((p["bypass_from"], p["bypass_to"]))
        lo = plan.clamped.get("bypass_from", {}).get("used", lo)
        length = plan.clamped.get("span_length", {}).get("used", p["span_length"]) if "bypass_from" not in plan.clamped else 1
        key = (lo, hi, min(length, hi - lo + 1))  # the range and the effective span length, after the alive clamp
        structure = tuple(map(tuple, cfg.resolved_spans(6)))
        assert structure == tuple((a, min(a + key[2] - 1, hi)) for a in range(lo, hi + 1, key[2]))
        assert seen.setdefault(key, structure) == structure
        over += planned_params(cfg, shape)["peak"] > 100_000
        study.tell(trial, 0.0)
    # (range, effective span length) -> structure is one-to-one
    assert len(set(seen.values())) == len(seen)
    assert 0.15 < over / 400 < 0.5


@pytest.mark.parametrize("num_layers", [6, 12])
def test_default_space_has_no_dead_structure(num_layers):
    """A structure whose bypasses may all end on the top layer (after the merges that always succeed) with no
    injected layer trains only what the head does alone: the default space never samples one."""
    space = load_space("lor2c_full")
    study = optuna.create_study(sampler=RandomSampler(seed=num_layers))
    top_only = 0
    for _ in range(300):
        trial = study.ask()
        cfg = space.suggest(trial, num_layers).adapter
        p = trial.params
        assert not is_dead(cfg, num_layers), (p, cfg.resolved_spans(num_layers), cfg.merge_count)
        top_only += max(p["bypass_from"], p["bypass_to"]) == num_layers - 1 and \
            min(p["bypass_from"], p["bypass_to"]) + p["span_length"] > num_layers - 1
        study.tell(trial, 0.0)
    assert top_only > 0  # the prior does fall there: the clamp, not luck, keeps it alive
    # the rule itself: a single top-ending bypass is dead, one below the top or an injection is not
    assert is_dead(LoR2CConfig(spans=[[2, num_layers - 1]]), num_layers)
    assert not is_dead(LoR2CConfig(spans=[[2, num_layers - 2]]), num_layers)
    assert is_dead(LoR2CConfig(spans=[[3, 3], [4, num_layers - 1]], merge_count=1, max_merge_span=99), num_layers)
    assert not is_dead(LoR2CConfig(spans=[[num_layers - 1, num_layers - 1]], inject_count=1), num_layers)


@pytest.mark.parametrize("num_layers", [6, 12])
def test_default_space_expresses_the_lor2c_builtins(num_layers):
    from autolor2c.search.run import builtin_params
    from autolor2c.train import read_config_file

    space = load_space("lor2c_full")
    for name in ("lor2c", "sharelor2c", "imlor2c"):
        params = builtin_params(space, num_layers, name)
        assert params is not None, name
        cfg = space.fixed_plan(params, num_layers).adapter
        want = read_config_file(name)[0].lor2c
        assert cfg.resolved_spans(num_layers) == want.resolved_spans(num_layers)
        assert (cfg.rank, cfg.alpha, cfg.share_a, cfg.merge_count, cfg.inject_count) == \
            (want.rank, want.alpha, want.share_a, want.merge_count, want.inject_count)
    assert builtin_params(space, num_layers, "lora") is None  # another method: a baseline trained apart


def test_lora_space_defaults_are_the_lora_specs():
    import dataclasses

    from autolor2c.search.space import LORA_DEFAULTS
    from autolor2c.train import LoRASpec

    spec = LoRASpec()
    assert {k: v for k, v in LORA_DEFAULTS.items() if k != "layers"} == \
        {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name != "layers"}
