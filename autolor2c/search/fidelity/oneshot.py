"""The one-shot rung: a configuration scored inside a super-adapter trained once per task, model, space, budget,
data and training arguments (cached beside the study, like the baselines), in seconds and without training.

The super-adapter holds what the space can place within the budget: every span up to the longest the space
tiles or merges into, ranks nested up to the largest one bypass may have within the budget, and the injected
LoRA of every layer. It is trained on structures drawn from the space's own prior (Optuna's random sampler on
the space, as the search's start-up draws them), the largest and the smallest of them in turn (the sandwich
rule). A shared adapter cannot judge the learning rate or alpha: structures train and score at one alpha, the
learning rate is the library's, and both are judged at the real rungs a promotion leads to.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autolor2c.errors import UserError
from autolor2c.lor2c import LoR2CConfig

ONESHOT_VERSION = 1
ALPHA = 16.0             # the alpha every structure trains and scores at (the built-ins' alpha)
PRIOR_DRAWS = 400        # prior draws that size the super-adapter and give its largest and smallest structures


@dataclass
class Prior:
    """What the space places within the budget: the structures to draw from, and the super-adapter's size."""
    structures: list[LoR2CConfig]   # feasible draws of the space's prior, alpha set to ALPHA
    largest: LoR2CConfig
    smallest: LoR2CConfig
    max_span: int
    max_rank: int
    max_lora_rank: int
    inject_targets: list[str]


def structure(config: LoR2CConfig) -> LoR2CConfig:
    """What the one-shot rung judges of a configuration: its structure, at the one alpha."""
    cfg = copy.deepcopy(config)
    cfg.alpha, cfg.alphas = ALPHA, None
    return cfg


def _largest_rank(ctx, high: int) -> int:
    """The largest rank one bypass may have within the budget (counted, not derived from the model)."""
    from autolor2c.train import AdapterSpec, count_adapter_params

    def fits(r: int) -> bool:
        spec = AdapterSpec("lor2c", lor2c=LoR2CConfig(spans=[[0, 0]], rank=r))
        return count_adapter_params(spec, ctx.shape)["peak"] <= ctx.budget

    lo, hi = 1, max(1, high)
    if not fits(lo):
        return 1
    while lo < hi:  # the count grows with the rank
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def space_prior(ctx, n: int = PRIOR_DRAWS, seed: int = 0) -> Prior:
    """Draw ``n`` configurations from the space's prior and keep those within the budget."""
    import optuna

    from autolor2c.train import AdapterSpec, count_adapter_params

    if ctx.space.method != "lor2c":
        raise UserError("the one-shot rung needs a lor2c space", param="oneshot", value=ctx.space.name)
    num_layers = ctx.shape.num_layers
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    drawn: list[tuple[int, LoR2CConfig]] = []
    for _ in range(n):
        plan = ctx.space.suggest(study.ask(), num_layers)
        spec = AdapterSpec("lor2c", lor2c=plan.adapter)
        params = count_adapter_params(spec, ctx.shape)
        if params["peak"] <= ctx.budget:
            drawn.append((params["final"], structure(plan.adapter)))
    if not drawn:
        raise UserError("no configuration of the space fits the budget", param="budget", value=ctx.budget)
    cfgs = [c for _, c in drawn]
    high = max(int(c.rank) for c in cfgs)
    rank_spec = ctx.space.params.get("rank")
    if rank_spec is not None and getattr(rank_spec, "high", None) is not None:
        high = max(high, int(rank_spec.high))
    max_rank = _largest_rank(ctx, high)
    longest = max(max(c.max_merge_span, *(j - i + 1 for i, j in c.resolved_spans(num_layers)))
                  for c in cfgs)
    max_lora_rank = max(max(1, max_rank // 2), *(c.inject_rank or 1 for c in cfgs))
    by_size = sorted(drawn, key=lambda x: x[0])
    return Prior(cfgs, by_size[-1][1], by_size[0][1], min(longest, num_layers), max_rank, max_lora_rank,
                 list(cfgs[0].inject_targets))


def cache_key(ctx, prior: Prior) -> tuple[str, dict[str, Any]]:
    """The super-adapter's cache name and identity: task, model, data, space (its file's text), budget, the
    training arguments of the top rung (seed aside) and the trainer and one-shot versions."""
    from autolor2c.tasks import resolve_data_dir
    from autolor2c.train import TRAINER_VERSION, model_label

    s = ctx.settings
    args = s.train_args({}, seed=0)
    data_dir = resolve_data_dir(s.data_dir)
    space_text = Path(s.space_path()).read_text() if Path(s.space_path()).is_file() else ctx.space.name
    ident = {"task": ctx.task.name, "model": model_label(s.model),
             "data": str(data_dir.resolve()) if data_dir else "hub", "trainer": TRAINER_VERSION,
             "oneshot": ONESHOT_VERSION, "budget": ctx.budget,
             "space": hashlib.sha256(space_text.encode()).hexdigest()[:16],
             "super_adapter": {"max_span": prior.max_span, "max_rank": prior.max_rank,
                               "max_lora_rank": prior.max_lora_rank, "alpha": ALPHA},
             "args": {k: v for k, v in vars(args).items() if k not in ("progress", "seed", "device")}}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{ctx.task.name}-{model_label(s.model)}-oneshot-{digest}", ident


class OneShotRung:
    """The trained super-adapter of a search (cached), and the score of a configuration inside it."""

    def __init__(self, ctx, cache_dir: Path | None = None, progress: bool = True):
        from autolor2c.train.oneshot import load_super_adapter, read_super_adapter_meta, save_super_adapter, \
            train_super_adapter

        self.ctx = ctx
        self.prior = space_prior(ctx)
        name, ident = cache_key(ctx, self.prior)
        cache_dir = Path(cache_dir) if cache_dir is not None else (ctx.out.parent / "oneshot")
        self.folder = cache_dir / name
        s = ctx.settings
        args = s.train_args({}, seed=0)
        args.progress = progress
        meta = read_super_adapter_meta(self.folder)
        self.cached = meta is not None and meta.get("identity") == ident  # a stale or foreign one is not used
        if self.cached:
            self.run = load_super_adapter(self.folder, ctx.task, args, model_name=s.model, data_dir=s.data_dir)
        else:
            p = self.prior
            rng_draws = p.structures

            def draw(rng: random.Random) -> LoR2CConfig:
                return rng.choice(rng_draws)

            print(f"training the super-adapter for the one-shot rung ({len(p.structures)} structures of the space "
                  f"within the budget; spans up to {p.max_span} layers, ranks up to {p.max_rank})")
            self.run = train_super_adapter(ctx.task, draw, [p.largest, p.smallest], args, max_span=p.max_span,
                                           max_rank=p.max_rank, max_lora_rank=p.max_lora_rank,
                                           inject_targets=p.inject_targets, model_name=s.model,
                                           data_dir=s.data_dir)
            save_super_adapter(self.run, self.folder, {"identity": ident})
        self.train_wall_s = 0.0 if self.cached else self.run.wall_s
        self.train_cpu_s = 0.0 if self.cached else self.run.cpu_s

    def score(self, config: LoR2CConfig) -> dict[str, Any]:
        """The configuration's one-shot selection score (its structure at the one alpha)."""
        from autolor2c.train.oneshot import score_structure

        return score_structure(self.run, structure(config))
