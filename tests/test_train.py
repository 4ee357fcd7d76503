"""The training loop on real SST-2 slices with the embedded model; the train/predict CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from autolor2c.cli import main
from autolor2c.errors import UserError
from autolor2c.lor2c import LoR2CModel
from autolor2c.train import AdapterSpec, LoRASpec, TrainArgs, TrainResult, read_config_file, structure_schedule, train


def test_structure_schedule_spaces_changes_in_the_first_quarter():
    plan = structure_schedule(400, merges=3, injects=1)
    merges = sorted(s for s, ops in plan.items() if "merge" in ops)
    injects = sorted(s for s, ops in plan.items() if "inject" in ops)
    assert merges == [33, 66, 99] and injects == [100]
    assert max(plan) <= 100
    assert structure_schedule(400, 0, 0) == {}
    tiny = structure_schedule(6, merges=3, injects=2)  # short runs still get every change
    assert sum(ops.count("merge") for ops in tiny.values()) == 3
    assert sum(ops.count("inject") for ops in tiny.values()) == 2
    assert max(tiny) <= 6


def test_short_run_beats_majority_class(glue_dir, tmp_path):
    spec, _ = read_config_file("lor2c")
    args = TrainArgs(epochs=1, max_train_samples=1200, learning_rate=4e-3, max_length=48, progress=False, min_steps=0)
    r = train("sst2", spec, args, data_dir=str(glue_dir), out_dir=tmp_path / "run")
    majority = 444 / 872
    assert r.primary_score > majority + 0.08, r.primary_score
    assert r.trainable_params == r.analytic_params == 6 * 2 * 8 * 384
    assert r.head_params == (384 * 384 + 384) + (384 * 2 + 2)  # pooler + classifier
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("task", "scores", "primary_score", "trainable_params", "head_params", "wall_time_s", "steps", "history"):
        assert key in metrics
    # a typed result: metrics.json is its record, without the model
    assert isinstance(r, TrainResult) and isinstance(r.adapted_model, LoR2CModel)
    assert metrics == json.loads(json.dumps(r.to_dict())) and "adapted_model" not in metrics


def test_predict_reproduces_score(glue_dir, tmp_path, capsys):
    spec, _ = read_config_file("sharelor2c")
    args = TrainArgs(epochs=1, max_train_samples=600, max_length=64, progress=False, min_steps=0)
    r = train("sst2", spec, args, data_dir=str(glue_dir), out_dir=tmp_path / "run")
    capsys.readouterr()
    assert main(["predict", "--adapter", str(tmp_path / "run" / "adapter"), "--data-dir", str(glue_dir)]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["primary_score"] == pytest.approx(r.primary_score, abs=1e-9)
    assert main(["predict", "--adapter", str(tmp_path / "run" / "adapter"), "--text", "a wonderful , moving film"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["label"] in ("negative", "positive")


def test_merge_and_inject_happen_on_schedule(glue_dir):
    spec, _ = read_config_file("imlor2c")  # 2 merges + 1 injection
    args = TrainArgs(epochs=1, max_train_samples=1280, max_steps=40, max_length=48, progress=False, min_steps=0,
                     learning_rate=5e-3)
    r = train("sst2", spec, args, data_dir=str(glue_dir))
    ops = [(e["op"], e["step"]) for e in r.history]
    assert ops == [("merge", 5), ("merge", 10), ("inject", 10)]
    s = r.final_structure
    assert len(s["spans"]) == 6 - 2 - 1 and len(s["injected"]) == 1
    assert s["injected"][0] not in [k for sp in s["spans"] for k in range(sp[0], sp[1] + 1) if sp[0] == sp[1]]
    covered = sorted(k for sp in s["spans"] for k in range(sp[0], sp[1] + 1)) + s["injected"]
    assert sorted(covered) == list(range(6))
    # every change is logged with the scores that chose it
    assert all("scores" in e and len(e["scores"]) >= 1 for e in r.history)
    assert r.trainable_params == r.analytic_params == 3 * 2 * 8 * 384 + 2 * 4 * (384 + 384)
    model = r.adapted_model
    assert all(p.grad is not None for p in model.injections.parameters())  # the injected LoRA trained


def test_lora_baseline_through_peft(glue_dir):
    spec = AdapterSpec("lora", lora=LoRASpec(rank=2, alpha=4.0, layers=[4, 5]))
    args = TrainArgs(epochs=1, max_train_samples=320, max_length=48, progress=False, min_steps=0)
    r = train("sst2", spec, args, data_dir=str(glue_dir))
    assert r.trainable_params == r.analytic_params == 2 * 2 * 2 * (384 + 384)
    assert r.head_params == 147_840 + 770  # the same head as LoR2C: pooler + classifier
    model = r.adapted_model
    assert any("pooler" in n and "modules_to_save" in n and p.requires_grad for n, p in model.named_parameters())


def test_a_reused_backbone_trains_exactly_like_a_fresh_load(glue_dir):
    """Trials in one worker reuse the loaded model, tokenizer and encoded data; the backbone's weights and the
    head's initialisation must come out exactly as a fresh load's, whatever ran before."""
    import torch

    from autolor2c.train import backbone

    spec, _ = read_config_file("sharelor2c")
    args = TrainArgs(max_train_samples=96, max_eval_samples=64, max_length=32, progress=False, min_steps=0,
                     selection_fraction=0.1, seed=3)
    backbone._pretrained_state.cache_clear()
    fresh = train("sst2", spec, args, data_dir=str(glue_dir))
    other, _ = read_config_file("imlor2c")  # something else trains in the same process first
    train("sst2", other, TrainArgs(max_train_samples=96, max_eval_samples=64, max_length=32, progress=False,
                                   min_steps=0, selection_fraction=0.1, learning_rate=5e-2), data_dir=str(glue_dir))
    reused = train("sst2", spec, args, data_dir=str(glue_dir))
    assert reused.primary_score == fresh.primary_score and reused.dev_score == fresh.dev_score
    a, b = fresh.adapted_model.state_dict(), reused.adapted_model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_dev_curve_scores_dev_at_every_evaluation_and_chooses_nothing(glue_dir):
    """dev_curve records the dev score beside each selection evaluation; the run (its checkpoint, scores and
    weights) is exactly the run without it, so a curve never leaks dev into a choice."""
    import torch

    spec, _ = read_config_file("lor2c")
    kw = dict(max_train_samples=96, max_eval_samples=32, max_length=24, batch_size=8, progress=False, min_steps=12,
              selection_fraction=0.2, eval_every=6, seed=1)
    plain = train("sst2", spec, TrainArgs(**kw), data_dir=str(glue_dir))
    curve = train("sst2", spec, TrainArgs(**kw, dev_curve=True), data_dir=str(glue_dir))
    assert [e["step"] for e in curve.evals] == [6, 12]
    assert all(0.0 <= e["dev_accuracy"] <= 1.0 for e in curve.evals) and "dev_accuracy" not in plain.evals[0]
    at_best = next(e for e in curve.evals if e["step"] == curve.best_step)
    assert at_best["dev_accuracy"] == curve.dev_score  # the kept checkpoint is the one the curve scored there
    assert (curve.best_step, curve.primary_score, curve.dev_score) == (plain.best_step, plain.primary_score,
                                                                       plain.dev_score)
    a, b = plain.adapted_model.state_dict(), curve.adapted_model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_stops_a_stalled_run_but_never_before_the_structure_is_final(glue_dir):
    """patience=2: a run whose selection score stalls (a learning rate too small to change a prediction) stops
    two evaluations after its best, not at its planned length; merges and injections still all happen first,
    so the trained size is the planned one. Without patience the same run goes the whole way."""
    kw = dict(max_train_samples=64, max_eval_samples=16, max_length=24, batch_size=8, progress=False, min_steps=12,
              eval_every=2, selection_fraction=0.25, learning_rate=1e-12, score_dev=False)
    spec, _ = read_config_file("lor2c")
    full = train("sst2", spec, TrainArgs(**kw), data_dir=str(glue_dir))
    stopped = train("sst2", spec, TrainArgs(**kw, patience=2), data_dir=str(glue_dir))
    assert full.steps == 12 and stopped.steps == 6 and stopped.best_step == 2
    spec, _ = read_config_file("imlor2c")  # merges and injections scheduled in the first quarter
    late = train("sst2", spec, TrainArgs(**kw, patience=1), data_dir=str(glue_dir))
    last_change = max(h["step"] for h in late.history)
    assert last_change >= 3 and last_change <= late.steps <= last_change + 3 and late.steps < 12
    assert late.trainable_params == late.planned_params["final"]
    with pytest.raises(UserError, match="patience"):
        TrainArgs(patience=0).validate()


def test_head_only_baseline_trains_the_head_alone(glue_dir):
    r = train("sst2", AdapterSpec("head"), TrainArgs(max_train_samples=96, max_eval_samples=64, max_length=32,
                                                     progress=False, min_steps=0), data_dir=str(glue_dir))
    assert r.trainable_params == r.analytic_params == 0 and r.head_params == 147_840 + 770
    assert r.final_structure == {"method": "head"}


def test_adalora_baseline_trains_within_the_budget_and_reports_what_it_keeps(glue_dir):
    from autolor2c.train.adapters import adalora_schedule
    from autolor2c.train import AdaLoRASpec, count_adapter_params, load_backbone, model_shape

    shape = model_shape(load_backbone(None, 2), AdapterSpec("adalora", adalora=AdaLoRASpec()))
    spec = AdapterSpec("adalora", adalora=AdaLoRASpec.for_budget(100_000, shape))
    counts = count_adapter_params(spec, shape)
    assert counts["peak"] <= 100_000 < counts["peak"] + 12 * (384 + 384 + 1)  # the largest init_r that fits
    r = train("sst2", spec, TrainArgs(max_train_samples=160, max_eval_samples=32, max_length=24, progress=False,
                                      min_steps=20, selection_fraction=0.1), data_dir=str(glue_dir))
    assert r.trainable_params == counts["initial"] <= 100_000  # what it trains: PEFT's own count agrees
    assert r.final_structure["kept_params"] == counts["final"] < r.trainable_params  # what it ends with
    # the checkpoint it reports is one of the pruned model: none from before the budget was final
    assert r.best_step > adalora_schedule(spec.adalora, r.steps)["final_step"]


def test_adalora_schedule_scales_with_the_run():
    from autolor2c.train.adapters import adalora_schedule
    from autolor2c.train import AdaLoRASpec

    spec = AdaLoRASpec()
    short, long = adalora_schedule(spec, 300), adalora_schedule(spec, 3000)
    for k in ("tinit", "tfinal", "deltaT"):
        assert long[k] == pytest.approx(10 * short[k], rel=0.1)   # the same shape, ten times as long
    assert short["tinit"] < short["final_step"] <= 300 and long["final_step"] == 3000 - long["tfinal"]
    # PEFT's own config takes exactly these (attach builds it from the same function)
    from autolor2c.train import attach, load_backbone
    import dataclasses
    model = attach(load_backbone(None, 2), AdapterSpec("adalora", adalora=dataclasses.replace(spec, total_step=3000)))
    cfg = model.peft_config["default"]
    assert (cfg.tinit, cfg.tfinal, cfg.deltaT, cfg.total_step) == (long["tinit"], long["tfinal"], long["deltaT"], 3000)


@pytest.mark.parametrize("arch", ["bert", "llama"])
def test_backbone_dropout_off_makes_training_forward_deterministic(arch):
    import torch

    from autolor2c.train.backbone import set_backbone_dropout
    from conftest import tiny_model

    base = tiny_model(arch)
    for m in base.modules():  # give the tiny model real dropout first
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.3
        if isinstance(getattr(m, "attention_dropout", None), float):
            m.attention_dropout = 0.3
    base.train()
    ids = torch.randint(1, 100, (2, 9))
    with torch.no_grad():
        assert not torch.equal(base(input_ids=ids).logits, base(input_ids=ids).logits)
        assert set_backbone_dropout(base, 0.0) >= 1
        assert torch.equal(base(input_ids=ids).logits, base(input_ids=ids).logits)


def test_load_backbone_dropout_leaves_the_cached_template_alone():
    import torch

    from autolor2c.train import load_backbone

    rates = lambda m: {x.p for x in m.modules() if isinstance(x, torch.nn.Dropout)}  # noqa: E731
    assert rates(load_backbone(None, 2, dropout=0.0)) == {0.0}
    assert rates(load_backbone(None, 2)) == {0.1}  # the next run still gets the model's own rates


def test_backbone_dropout_setting_is_validated():
    from autolor2c.errors import UserError

    with pytest.raises(UserError, match="backbone_dropout 1.5"):
        TrainArgs(backbone_dropout=1.5).validate()
    assert TrainArgs().backbone_dropout == 0.0 and TrainArgs(backbone_dropout=None).validate()


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autolor2c.cli", *args], capture_output=True, text=True, timeout=300)


def test_train_cli_writes_metrics_and_adapter(glue_dir, tmp_path):
    p = _run_cli("train", "--task", "sst2", "--config", "injectlor2c", "--data-dir", str(glue_dir),
                 "--min-steps", "0", "--max-train-samples", "320", "--max-length", "48", "--out", str(tmp_path / "o"))
    assert p.returncode == 0, p.stderr[-2000:]
    assert "accuracy" in p.stdout
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert [e["op"] for e in m["history"]] == ["inject"]
    adapter = tmp_path / "o" / "adapter"
    assert (adapter / "lor2c_model.safetensors").is_file()
    # portable: the hub id of the embedded model, never its path inside the venv
    cfg = json.loads((adapter / "lor2c_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    card = (adapter / "README.md").read_text()
    assert "sentence-transformers/all-MiniLM-L6-v2" in card and "LoRA injected on layers" in card
    assert f"{m['trainable_params']:,} trainable parameters" in card and "(seed 0)" in card


@pytest.mark.parametrize("make_args,needle", [
    (lambda t, g: ["train", "--task", "sst5", "--config", "lor2c"], "sst5"),
    (lambda t, g: ["train", "--task", "sst2", "--config", "nope.yaml", "--data-dir", g], "nope.yaml"),
    (lambda t, g: ["train", "--task", "sst2", "--config", str(t / "broken.yaml"), "--data-dir", g], "broken.yaml"),
    (lambda t, g: ["train", "--task", "sst2", "--config", str(t / "badkey.yaml"), "--data-dir", g], "rnak"),
    (lambda t, g: ["train", "--task", "sst2", "--config", "lor2c", "--model", str(t / "no_model"), "--data-dir", g], "no_model"),
    (lambda t, g: ["train", "--task", "sst2", "--config", "lor2c", "--data-dir", str(t / "nodata")], "nodata"),
    (lambda t, g: ["train", "--task", "custom", "--config", "lor2c", "--train-file", str(t / "c.csv"),
                   "--validation-file", str(t / "c.csv"), "--text-columns", "review"], "review"),
    (lambda t, g: ["train", "--task", "sst2", "--config", "lor2c", "--epochs", "-1"], "-1"),
    (lambda t, g: ["predict", "--adapter", str(t / "no_adapter")], "no_adapter"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, glue_dir, make_args, needle):
    (tmp_path / "broken.yaml").write_text("method: lor2c\nadapter: {rank: 8\n")
    (tmp_path / "badkey.yaml").write_text(yaml.safe_dump({"method": "lor2c", "adapter": {"rnak": 8}}))
    (tmp_path / "c.csv").write_text("sentence,label\ngood,1\nbad,0\n")
    p = _run_cli(*make_args(tmp_path, str(glue_dir)))
    assert p.returncode == 2, (p.returncode, p.stderr[-1500:])
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert needle in lines[0]
