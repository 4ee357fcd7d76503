"""bf16 autocast: asked for by --precision, refused (one line, exit 2, nothing created) on a CPU without native
bf16, and a training step and evaluation on CPU then really run under bf16 autocast."""

from __future__ import annotations

import pytest
import torch

from autolor2c import precision
from autolor2c.cli import main
from autolor2c.errors import UserError
from autolor2c.search.run import SearchSettings
from autolor2c.train import TrainArgs
from autolor2c.train.loop import _autocast


def test_cpu_flags_decide_native_bf16(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512bw\n")
    assert precision._cpu_flags(info) == {"fpu", "avx512f", "avx512bw"}
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx512f", "avx512bw"})
    assert not precision.cpu_has_bf16()  # AVX-512 alone emulates bf16
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx512f", "amx_bf16"})
    assert precision.cpu_has_bf16() == bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def test_precision_is_validated_naming_the_bad_value():
    with pytest.raises(UserError, match="precision 'fp16'"):
        TrainArgs(precision="fp16").validate()
    assert TrainArgs().precision == "fp32"
    assert "precision" not in SearchSettings().identity()  # old studies still resume
    assert SearchSettings.from_identity(SearchSettings(precision="bf16").identity()).precision == "bf16"


def test_bf16_is_refused_where_the_cpu_lacks_it_and_accepted_where_it_has_it(monkeypatch, tmp_path, glue_dir, capsys):
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    with pytest.raises(UserError, match="no native bf16"):
        TrainArgs(precision="bf16", device="cpu").validate()
    out = tmp_path / "o"
    for argv in (["train", "--task", "sst2", "--config", "lor2c", "--data-dir", str(glue_dir), "--out", str(out)],
                 ["search", "--task", "sst2", "--data-dir", str(glue_dir), "--out", str(out),
                  "--storage", f"sqlite:///{tmp_path / 's.db'}"]):
        assert main([*argv, "--precision", "bf16"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("autolor2c: error: bad --precision 'bf16': this CPU has no")
    assert list(tmp_path.iterdir()) == []
    assert main(["train", "--task", "sst2", "--config", "lor2c", "--precision", "fp16"]) == 2
    assert "--precision: invalid choice: 'fp16'" in capsys.readouterr().err
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert TrainArgs(precision="bf16", device="cpu").validate().precision == "bf16"
    SearchSettings(precision="bf16", data_dir=str(glue_dir)).validate()


def test_a_bf16_step_on_cpu_runs_under_autocast():
    cpu = torch.device("cpu")
    assert not torch.is_autocast_enabled("cpu")
    with _autocast(cpu, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    layer = torch.nn.Linear(8, 2)
    with _autocast(cpu, "bf16"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
        out = layer(torch.randn(4, 8))
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert layer.weight.grad.dtype == torch.float32  # the weights and their gradients stay fp32


def test_the_trainer_integration_trains_in_bf16_when_asked(tmp_path, monkeypatch):
    from autolor2c.integrations.hf import training_arguments

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)  # whatever this machine's CPU

    assert not training_arguments(tmp_path).bf16
    args = training_arguments(tmp_path, train={"precision": "bf16"})
    assert args.bf16 and (torch.cuda.is_available() or args.use_cpu)
