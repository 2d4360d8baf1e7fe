"""The split-BN benchmark runs its three variants end to end (tiny shapes; no timing is asserted)."""
from __future__ import annotations

import json

from mocobench.benchmarks.perf import split_bn_speed


def test_split_bn_benchmark_runs_every_variant(capsys):
    assert split_bn_speed.main(["--size", "8", "--batch", "16", "--queue", "64", "--threads", "1", "--rounds", "1",
                                "--steps", "1", "--channels-last"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["s_per_step"]) == set(split_bn_speed.VARIANTS) and result["channels_last"] is True
    assert all(t > 0 for t in result["s_per_step"].values()) and result["overhead_pct"]["plain BN"] == 0.0
