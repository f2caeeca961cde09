"""Search-space optimisation (MCUNet §3.1): for each (width, resolution) of a space's grid, sample
networks, keep those whose peak SRAM and flash fit the budget, and choose the (W, R) whose fitting
networks have the highest mean MACs, among those where at least `min_fit` of the networks fit.

Sampling is separate from the budget: `sample_grid` computes each network's footprint once (its
planned arena, int8 constants, layers and MACs, `nas.footprint`), and `summarise` adds a board's
measured overhead (`nas.overhead`) and applies a budget, so several budgets reuse one sampling.
The samples are kept in the cache (`nas.sample_cache`): the commands that choose (W, R) again
read them instead of sampling again."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from nas.footprint import footprint, shape_plan
from nas.overhead import BoardOverhead
from nas.space import SearchSpace, SpaceError
from nas.workers import process_pool

# Below this share of fitting networks a space is not chosen, whatever its mean MACs: most of the
# supernet's subnets could not be deployed and evolution would spend most samples resampling. Half
# keeps the rule MCUNet's (highest mean MACs) wherever a majority fits.
DEFAULT_MIN_FIT = 0.5
PERCENTILES = (50, 90, 100)


@dataclass(frozen=True)
class Budget:
    sram_bytes: int  # the model's peak SRAM: arena, its statics and the stack
    flash_bytes: int  # the whole image: int8 constants, code and harness


@dataclass
class GridSample:
    """The footprints of the networks sampled at one (width, resolution), as arrays."""

    width: float
    resolution: int
    arena: np.ndarray
    constants: np.ndarray
    ops: np.ndarray
    macs: np.ndarray
    # With patches allowed (`patch_limit`): the arena of the patch plan of each network whose
    # whole-tensor arena is over the limit (nas.patching.plan_patches), and its patch ops; -1
    # where no plan is needed or none fits.
    patched_arena: np.ndarray | None = None
    patch_ops: np.ndarray | None = None
    from_cache: bool = False  # read from nas.sample_cache rather than computed now


@dataclass(frozen=True)
class GridPoint:
    """One (width, resolution) under a budget."""

    width: float
    resolution: int
    samples: int
    fitting: int
    patched: int  # of the fitting networks, those that fit only with patches
    mean_macs: float  # of the fitting networks (0 when none fits)
    peak_sram: dict[int, int]  # percentile -> peak SRAM of all the sampled networks
    flash: dict[int, int]  # percentile -> flash of all the sampled networks
    macs_fitting: np.ndarray  # the fitting networks' MACs (for the CDF)

    @property
    def fit_share(self) -> float:
        return self.fitting / self.samples if self.samples else 0.0

    def to_json(self) -> dict:
        return {"width": self.width, "resolution": self.resolution, "samples": self.samples, "fitting": self.fitting,
                "fitting_with_patches": self.patched, "fit_share": round(self.fit_share, 4),
                "mean_macs_fitting": round(self.mean_macs, 1),
                **{f"peak_sram_p{p}_bytes": v for p, v in self.peak_sram.items()},
                **{f"flash_p{p}_bytes": v for p, v in self.flash.items()}}


def point_seed(seed: int, width: float, resolution: int) -> str:
    """The random generator's seed of one grid point: the same networks whatever else is sampled."""
    return f"{seed}:{width:g}:{resolution}"


def sample_point(space: SearchSpace, width: float, resolution: int, samples: int, seed: int,
                 patch_limit: int | None = None) -> GridSample:
    """`samples` random networks of the space at (width, resolution) and their footprints; with
    `patch_limit` (bytes of arena), the patch plan of each network whose arena is over it."""
    from nas.patching import plan_patches

    rng = random.Random(point_seed(seed, width, resolution))
    found, plans = [], []
    for _ in range(samples):
        config = space.sample(rng, width=width, resolution=resolution)
        shaped = shape_plan(config)
        found.append(footprint(config, shaped))
        over = patch_limit is not None and found[-1].arena_bytes > patch_limit
        plans.append(plan_patches(config, patch_limit, shaped=shaped) if over else None)
    sample = GridSample(width, resolution, np.array([f.arena_bytes for f in found], np.int64),
                        np.array([f.constant_bytes for f in found], np.int64), np.array([f.ops for f in found], np.int64),
                        np.array([f.macs for f in found], np.int64))
    if patch_limit is not None:
        sample.patched_arena = np.array([-1 if p is None else p.arena_bytes for p in plans], np.int64)
        sample.patch_ops = np.array([-1 if p is None else p.patch_ops for p in plans], np.int64)
    return sample


def _sample_job(args: tuple) -> GridSample:
    return sample_point(*args)


def sample_grid(space: SearchSpace, samples: int, seed: int = 0, jobs: int = 1,
                patch_limit: int | None = None, cache: bool = True) -> Iterator[GridSample]:
    """Every grid point's sample, in grid order, on `jobs` processes (`patch_limit` as sample_point's).
    With `cache`, a point sampled before with the same arguments and code is read from the cache
    (`nas.sample_cache`), and one computed now is kept there."""
    from nas.sample_cache import load_sample, sample_path, save_sample

    if samples < 1:
        raise SpaceError(f"samples must be at least 1, not {samples}")
    work = [(space, w, r, samples, seed, patch_limit) for w, r in space.grid]
    paths = [sample_path(*job) if cache else None for job in work]
    kept = [load_sample(path) if path is not None else None for path in paths]
    missing = [job for job, sample in zip(work, kept) if sample is None]
    if jobs <= 1 or len(missing) <= 1:
        computed = map(_sample_job, missing)
        pool = None
    else:
        pool = process_pool(min(jobs, len(missing)))
        computed = pool.map(_sample_job, missing)
    try:
        for path, sample in zip(paths, kept):
            if sample is None:
                sample = next(computed)
                if path is not None:
                    save_sample(path, sample)
            yield sample
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def summarise(sample: GridSample, overhead: BoardOverhead, budget: Budget) -> GridPoint:
    """One grid point under the budget, the board's overhead added to each network (and, where it
    needs patches to fit, its patch plan's arena and code)."""
    arena = sample.arena
    flash = sample.constants + np.rint(overhead.code_base_bytes + overhead.code_per_op_bytes * sample.ops).astype(np.int64)
    patched = np.zeros(len(arena), bool)
    if sample.patched_arena is not None:
        patched = sample.patched_arena >= 0
        arena = np.where(patched, sample.patched_arena, arena)
        code = [overhead.patch_code_bytes(int(n)) if n >= 0 else 0 for n in sample.patch_ops]
        flash = flash + np.where(patched, code, 0)
    peak = arena + overhead.sram_bytes
    fits = (peak <= budget.sram_bytes) & (flash <= budget.flash_bytes)
    macs = sample.macs[fits]
    return GridPoint(sample.width, sample.resolution, len(peak), int(fits.sum()), int((fits & patched).sum()),
                     float(macs.mean()) if len(macs) else 0.0,
                     {p: int(np.percentile(peak, p)) for p in PERCENTILES},
                     {p: int(np.percentile(flash, p)) for p in PERCENTILES}, macs)


def choose(points: list[GridPoint], min_fit: float = DEFAULT_MIN_FIT) -> GridPoint:
    """The point whose fitting networks have the highest mean MACs among those where at least
    `min_fit` of the networks fit (the first in grid order on a tie); refused, with the best
    share seen, when none qualifies."""
    if not 0.0 <= min_fit <= 1.0:
        raise SpaceError(f"the minimum share of fitting networks is a fraction in [0, 1], not {min_fit}")
    eligible = [p for p in points if p.fitting and p.fit_share >= min_fit]
    if not eligible:
        best = max(points, key=lambda p: p.fit_share, default=None)
        seen = (f"at best {best.fit_share:.1%} of the networks fit, at W={best.width:g}, R={best.resolution}"
                if best is not None and best.fitting else "no sampled network fits at any (W, R)")
        raise SpaceError(f"no (W, R) of the grid has at least {min_fit:.0%} of its networks within the budget: "
                         f"{seen}; raise the SRAM or flash budget, lower --min-fit, or search a smaller space")
    return max(eligible, key=lambda p: p.mean_macs)  # max keeps the first of equal ones


def cdf_figure(points: list[GridPoint], chosen: GridPoint | None, path, title: str = "") -> None:
    """The CDF of the fitting networks' MACs, one panel per resolution, one curve per width (MCUNet's Fig. 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    resolutions = sorted({p.resolution for p in points})
    widths = sorted({p.width for p in points})
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(widths), 1)))
    figure, axes = plt.subplots(1, len(resolutions), figsize=(3.2 * len(resolutions), 3.4), sharey=True, squeeze=False)
    for axis, resolution in zip(axes[0], resolutions):
        for point in (p for p in points if p.resolution == resolution and p.fitting):
            values = np.sort(point.macs_fitting) / 1e6
            is_chosen = chosen is not None and (point.width, point.resolution) == (chosen.width, chosen.resolution)
            axis.step(values, np.arange(1, len(values) + 1) / len(values), where="post",
                      color="black" if is_chosen else colours[widths.index(point.width)],
                      linewidth=2.5 if is_chosen else 1.0,
                      label=f"W={point.width:g} ({point.fit_share:.0%} fit)" + (" chosen" if is_chosen else ""))
        axis.set_title(f"R={resolution}")
        axis.set_xlabel("MMACs of fitting networks")
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=6, loc="lower right")
        else:
            axis.text(0.5, 0.5, "no network fits", ha="center", transform=axis.transAxes)
    axes[0][0].set_ylabel("cumulative share")
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


