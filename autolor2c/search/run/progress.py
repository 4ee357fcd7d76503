"""The search's progress bar: configurations trained, the best feasible score, and the hypervolume over the
reference the report uses (a study callback; it decides nothing)."""

from __future__ import annotations

import optuna

from ..front import feasible_trials, study_hypervolume, trained_configurations
from .objective import SearchContext


class Progress:
    def __init__(self, study: optuna.Study, ctx: SearchContext, target: int | None, enabled: bool):
        self.ctx, self.target = ctx, target
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            done = trained_configurations(study)
            self.bar = tqdm(total=target, initial=min(done, target or done), desc=f"search {study.study_name}",
                            unit="config", dynamic_ncols=True)
            self._postfix(study)

    def _postfix(self, study: optuna.Study) -> None:
        feas = feasible_trials(study)
        best = max((t.values[0] for t in feas), default=float("nan"))
        hv = study_hypervolume(study, self.ctx.budget, self.ctx.trivial)
        self.bar.set_postfix_str(f"best {self.ctx.task.primary_metric}={best:.4f} hv={hv:.4f} (vs input-blind) "
                                 f"top-rung={len(feas)}")

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.bar is not None:
            self.bar.n = min(trained_configurations(study), self.target or 10**9)
            self.bar.refresh()
            self._postfix(study)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
