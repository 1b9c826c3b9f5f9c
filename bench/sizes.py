"""How big each scenario is: the full run (BENCHMARKS.md's figures) and the quick harness check."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1 << 20


@dataclass(frozen=True)
class Sizes:
    small_images: int = 40
    layers: int = 3
    layer_size: int = 1 * MiB
    base_size: int = 4 * MiB
    steady: tuple[int, ...] = (40, 200, 1000)
    cri_steady: tuple[int, ...] = (40, 1000)
    run_sweeps_from: int = 200
    """Steady sizes from which a `jcp run`'s in-process sweeps are measured too."""
    steady_repos: int = 40
    """Distinct images behind the steady references (the rest are more tags of them)."""
    parallel: tuple[int, ...] = (2, 4, 8, 16)
    """`xargs -P` levels of the cold warm-up."""
    big_images: int = 4
    mixed_small: int = 16
    """Small images before the big one in the mixed set."""
    big_layer_size: int = 50 * MiB
    repeats: int = 3
    long_run: float = 5.0
    """A contender whose first run takes longer than this runs once."""
    latency: float = 0.025
    rate: float = 100e6
    reload_repeats: int = 10
    idle_window: float = 10.0
    scale: tuple[int, ...] = (100, 1000, 5000)


QUICK = Sizes(
    small_images=4,
    layers=2,
    layer_size=64 * 1024,
    base_size=256 * 1024,
    steady=(4, 8),
    cri_steady=(4, 8),
    steady_repos=4,
    run_sweeps_from=8,
    parallel=(2, 8),
    big_images=1,
    mixed_small=2,
    big_layer_size=2 * MiB,
    repeats=1,
    reload_repeats=2,
    idle_window=1.0,
    scale=(10,),
)
