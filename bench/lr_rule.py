"""Does the learning rate that suits a search trial also suit the retrain? (issue 11, point 5)

A search trial trains on 4,000 rows for at least 300 steps; the retrain of the same configuration trains on
the whole training set (SST-2: ~65k rows, ~2,040 steps at one epoch). lr is not searched: trials and the
retrain both use the library default (``TrainArgs.learning_rate``). This bench measures whether that rule
holds: for a few configurations, an lr grid at trial scale and at retrain scale, each run built by the
product's own ``SearchSettings.train_args`` (stage ``trial`` / ``retrain``), scored on the selection split
(what a search would choose by) and on dev.

    python bench/lr_rule.py                 # resumable: each finished run is written at once
    python bench/lr_rule.py --summarise     # only rewrite the summary from the recorded runs

Configurations: the SST-2 P6 pick (its final structure fixed, as the retrain fixes it) when
bench/out/p6/sst2 holds that study, and the hand-set ``imlor2c``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import GLUE_DIR, RESULTS, machine_info, md_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = RESULTS / "lr_rule.json"
LRS = (1e-3, 2e-3, 4e-3)


def _field(r, key):
    return r[key] if isinstance(r, dict) else getattr(r, key)


def configurations(task: str):
    from autolor2c.search.retrain import fixed_structure_spec, trial_plan
    from autolor2c.train import read_config_file

    out = []
    p6 = ROOT / "bench" / "out" / "p6" / task / "studies" / "autolor2c.db"
    res = json.loads((RESULTS / f"p6_{task}.json").read_text()) if (RESULTS / f"p6_{task}.json").is_file() else {}
    pick = (res.get("search") or {}).get("pick_trial")
    if p6.is_file() and pick is not None:
        import optuna

        study = optuna.load_study(study_name=res["search"]["study"],
                                  storage=f"sqlite:///{p6}")
        t = study.trials[pick]
        out.append((f"p6-pick-trial{pick}", fixed_structure_spec(t), dict(trial_plan(t).train)))
    spec, plan_train = read_config_file("imlor2c")
    out.append(("imlor2c", spec, dict(plan_train)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--summarise", action="store_true")
    a = ap.parse_args()
    data = json.loads(OUT.read_text()) if OUT.is_file() else {"runs": []}
    data.setdefault("machine", machine_info())

    if not a.summarise:
        from autolor2c.search.study import SearchSettings, build_context
        from autolor2c.train import train

        ctx = build_context(SearchSettings(task=a.task, budget="0.1M", data_dir=GLUE_DIR, progress=False))
        s = ctx.settings
        _import_p6_retrain(data, a.task)
        done = {(r["config"], r["scale"], r["lr"]) for r in data["runs"]}
        # one configuration at a time, trial scale then retrain scale: a partial run answers for the pick
        for name, spec, plan_train in configurations(a.task):
            for scale in ("trial", "retrain"):
                for lr in LRS:
                    if (name, scale, lr) in done:
                        continue
                    args = s.train_args({**plan_train, "learning_rate": lr}, stage=scale, seed=0,
                                        n_full=ctx.n_train_full if scale == "trial" else None)
                    args.score_dev = True  # this bench reads dev at both scales; nothing is chosen by it
                    t0 = time.time()
                    r = train(ctx.task, spec, args, model_name=s.model, data_dir=s.data_dir, out_dir=None)
                    row = {"config": name, "scale": scale, "lr": lr, "selection": _field(r, "primary_score"),
                           "dev": _field(r, "dev_score"), "params": _field(r, "trainable_params"), "steps": _field(r, "steps"),
                           "n_train": _field(r, "n_train"), "wall_s": round(time.time() - t0, 1)}
                    data["runs"].append(row)
                    print(json.dumps(row), flush=True)
                    _write(data)
    _write(data)


def _import_p6_retrain(data: dict, task: str) -> None:
    """The P6 retrain of the pick at the default lr is this bench's (pick, retrain, 2e-3) run: the same
    arguments (``train_args`` stage ``retrain``, the fixed final structure), seed 0; its other seeds are kept."""
    res = json.loads((RESULTS / f"p6_{task}.json").read_text()) if (RESULTS / f"p6_{task}.json").is_file() else {}
    pick = ((res.get("search") or {}).get("retrain") or {}).get("pick")
    if not pick or any(r.get("source") == f"p6_{task}.json" for r in data["runs"]):
        return
    seed0 = next(r for r in pick["runs"] if r["seed"] == 0)
    data["runs"].append({"config": f"p6-pick-trial{pick['trial']}", "scale": "retrain", "lr": 2e-3,
                         "selection": seed0["selection"], "dev": seed0["dev"], "params": seed0["params"],
                         "steps": None, "n_train": seed0["n_train"], "wall_s": seed0["wall_s"],
                         "source": f"p6_{task}.json", "other_seeds_dev": [r["dev"] for r in pick["runs"] if r["seed"] != 0]})


def summary(runs: list[dict]) -> list[dict]:
    rows = []
    for name in dict.fromkeys(r["config"] for r in runs):
        by = {sc: {r["lr"]: r for r in runs if r["config"] == name and r["scale"] == sc} for sc in ("trial", "retrain")}
        if not by["trial"] or not by["retrain"]:
            continue
        best_trial = max(by["trial"], key=lambda lr: by["trial"][lr]["selection"])
        best_retrain = max(by["retrain"], key=lambda lr: by["retrain"][lr]["selection"])
        default = 2e-3
        row = {"config": name, "best_lr_trial": best_trial, "best_lr_retrain": best_retrain}
        if default in by["retrain"]:
            row["retrain_default_selection"] = by["retrain"][default]["selection"]
            row["retrain_default_dev"] = by["retrain"][default]["dev"]
        row["retrain_best_selection"] = by["retrain"][best_retrain]["selection"]
        row["retrain_best_dev"] = by["retrain"][best_retrain]["dev"]
        if best_trial in by["retrain"]:
            row["retrain_at_trial_best_dev"] = by["retrain"][best_trial]["dev"]
        rows.append(row)
    return rows


def render(d: dict) -> str:
    m = d["machine"]
    runs = d["runs"]
    lines = ["# lr rule: the trial's lr at the retrain's scale", "",
             f"CPU: {m.get('cpu')}, {m.get('cores_visible')} cores; torch {m.get('torch')}. Started {m.get('started')}.", "",
             "Each run is built by `SearchSettings.train_args` (stage `trial` = the search's full-fidelity trial, "
             "`retrain` = the retrain), 1 seed, scored on the selection split (what a search chooses by) and dev.", "",
             md_table(["config", "scale", "lr", "rows", "steps", "selection", "dev", "params", "wall s", "source"],
                      [[r["config"], r["scale"], f"{r['lr']:.0e}", f"{r['n_train']:,}", r["steps"] or "", f"{r['selection']:.4f}",
                        f"{r['dev']:.4f}", f"{r['params']:,}", r["wall_s"], r.get("source", "this bench")]
                       for r in sorted(runs, key=lambda r: (r["config"], r["scale"] != "trial", r["lr"]))])]
    s = summary(runs)
    if s:
        lines += ["## Best lr by scale (chosen on the selection split)", "",
                  md_table(["config", "best lr (trial)", "best lr (retrain)", "retrain dev at 2e-3 (default)",
                            "retrain dev at the retrain's best lr"],
                           [[r["config"], f"{r['best_lr_trial']:.0e}", f"{r['best_lr_retrain']:.0e}",
                             f"{r.get('retrain_default_dev', float('nan')):.4f}", f"{r['retrain_best_dev']:.4f}"] for r in s])]
        carried = [(r["config"], r["best_lr_trial"], r["retrain_at_trial_best_dev"], r["retrain_default_dev"]) for r in s
                   if "retrain_at_trial_best_dev" in r and "retrain_default_dev" in r]
        for name, lr, dev_carried, dev_default in carried:
            lines += [f"`{name}`: carrying the trial's best lr ({lr:.0e}) to the retrain gives dev {dev_carried:.4f}; "
                      f"the default 2e-3 gives {dev_default:.4f} ({dev_carried - dev_default:+.4f}).", ""]
        gaps = [r["retrain_best_dev"] - r["retrain_default_dev"] for r in s if "retrain_default_dev" in r]
        if gaps:
            lines += [f"Dev lost by keeping the default lr at retrain scale instead of the retrain's best: "
                      f"mean {statistics.fmean(gaps):+.4f} over {len(gaps)} configuration(s) (1 seed each; "
                      f"SST-2 dev seed-to-seed std is ~0.006, bench/results/p6_sst2.md).", ""]
    return "\n".join(lines) + "\n"


def _write(d: dict) -> None:
    d["summary"] = summary(d["runs"])
    OUT.write_text(json.dumps(d, indent=2, default=str))
    (RESULTS / "lr_rule.md").write_text(render(d))


if __name__ == "__main__":
    main()
