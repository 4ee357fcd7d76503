"""Issue 6 memory drill: resident memory over 20 small trials in one search process (first trial vs last)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import GLUE_DIR, machine_info, md_table, write_results  # noqa: E402

import psutil  # noqa: E402

from autolor2c.search.fidelity import Fidelity  # noqa: E402
from autolor2c.search.study import Objective, SearchSettings, run_search  # noqa: E402
from autolor2c.train import train  # noqa: E402


def main() -> None:
    proc, rss = psutil.Process(), []

    def factory(ctx):
        def trainer(task, spec, args, **kw):
            r = train(task, spec, args, **kw)
            rss.append(proc.memory_info().rss / 2**20)
            return r
        return Objective(ctx, trainer=trainer)

    tmp = tempfile.mkdtemp()
    settings = SearchSettings(task="sst2", budget="1M", data_dir=GLUE_DIR, storage=f"sqlite:///{tmp}/m.db",
                              study_name="m", trials=20, max_train_samples=256, max_eval_samples=64, max_length=32,
                              seeds=0, fidelity=Fidelity.off(), progress=False, sampler="random")
    run_search(settings, objective_factory=factory)
    data = {"rss_mb": [round(x, 1) for x in rss], "growth_mb": round(rss[-1] - rss[0], 1),
            "max_growth_mb": round(max(rss) - rss[0], 1), "trials": len(rss), "machine": machine_info()}
    write_results("memory_drill", data, lambda d: "# Memory drill: 20 trials in one process\n\n"
                  f"RSS after trial 1: {d['rss_mb'][0]} MB; after trial 20: {d['rss_mb'][-1]} MB; growth "
                  f"**{d['growth_mb']} MB** (max {d['max_growth_mb']} MB); target < 200 MB.\n\n"
                  + md_table(["trial", "RSS MB"], [[i + 1, v] for i, v in enumerate(d["rss_mb"])]))


if __name__ == "__main__":
    main()
