"""Every runnable benchmark: the detection and segmentation registries (each benchmark defined once, in
its room's benchmarks.py), looked up by name or alias. The runner and the make targets use this."""
from __future__ import annotations

from mocobench.common.benchmark import Benchmark, lookup
from mocobench.detection import benchmarks as detection
from mocobench.segmentation import benchmarks as segmentation

BENCHMARKS: dict[str, Benchmark] = {**detection.BENCHMARKS, **segmentation.BENCHMARKS}
ALIASES: dict[str, str] = {**detection.ALIASES, **segmentation.ALIASES}
DEMO_ALIASES: dict[str, str] = dict(detection.DEMO_ALIASES)  # built-in data only (see there)


def resolve_benchmark(name: str, *, builtin_data: bool = False) -> Benchmark:
    """A benchmark by name or alias; BenchmarkError names the known ones. On the built-in data
    (builtin_data=True) an alias in DEMO_ALIASES runs its demo benchmark instead."""
    if builtin_data and name in DEMO_ALIASES:
        name = DEMO_ALIASES[name]
    return lookup(BENCHMARKS, ALIASES, name)
