"""Issue 2: the max |LoR2C forward - direct formula| per architecture (tiny random models built from configs,
and the real embedded MiniLM), with random non-zero bypass weights. Uses the reference implementation in
autolor2c/testing.py (module replacement, no hooks)."""

from __future__ import annotations

import copy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

import torch  # noqa: E402
from bench.common import machine_info, md_table, write_results  # noqa: E402
from autolor2c.testing import ARCHS, CONFIGS, direct_forward as _direct_forward, inputs as _inputs, \
    randomise as _randomise, tiny_model  # noqa: E402

from autolor2c.lor2c import LoR2CConfig, get_lor2c_model  # noqa: E402


def main() -> None:
    rows, data = [], {"archs": {}}
    for arch in ARCHS:
        errs = []
        for k, cfg in enumerate(CONFIGS):
            base = tiny_model(arch).eval()
            w = get_lor2c_model(copy.deepcopy(base), cfg).eval()
            _randomise(w, seed=k)
            with torch.no_grad():
                got = w(**_inputs()).logits
            errs.append(float((got - _direct_forward(base, w, _inputs())).abs().max()))
        data["archs"][arch] = {"max_abs_diff": max(errs), "per_config": errs, "layers_path": w.layers_path}
        rows.append([arch, w.layers_path, f"{max(errs):.2e}"])
    from transformers import AutoTokenizer

    from autolor2c.train import load_backbone
    from autolor2c.train.backbone import resolve_model

    tok = AutoTokenizer.from_pretrained(resolve_model(None))
    base = load_backbone(None, 2).eval()
    inputs = dict(tok(["a gripping , funny film .", "dull"], padding=True, return_tensors="pt"))
    w = get_lor2c_model(copy.deepcopy(base), LoR2CConfig(spans=[[0, 0], [1, 3], [5, 5]], dropout=0.0)).eval()
    _randomise(w, scale=0.05)
    with torch.no_grad():
        err = float((w(**inputs).logits - _direct_forward(base, w, inputs)).abs().max())
    data["archs"]["all-MiniLM-L6-v2 (real)"] = {"max_abs_diff": err, "layers_path": w.layers_path}
    rows.append(["all-MiniLM-L6-v2 (real weights)", w.layers_path, f"{err:.2e}"])
    data["machine"] = machine_info()
    write_results("forward_equivalence", data, lambda d: "# Forward equivalence: LoR2C hooks vs the direct formula\n\n"
                  "Max abs difference of the logits over 4 configs (every layer r8; spans [0,1],[2,3]; per-bypass "
                  "ranks/alphas; shared A), fp32, eval mode, padded batch.\n\n" + md_table(["architecture", "layer stack", "max |diff|"], rows))


if __name__ == "__main__":
    main()
