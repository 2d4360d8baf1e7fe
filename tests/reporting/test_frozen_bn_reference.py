"""LVIS: the paper's supervised row fine-tuned with frozen BN is shown next to the `--norm FrozenBN` variant's
table (whose config, FREEZE_AT 2 included, is then the paper's: no deviation), not next to the default
naiveSyncBN run, which shows the paper's tuned-BN rows."""
from __future__ import annotations

from mocobench.detection.config import build_config
from mocobench.reporting.aggregate import build_tables, load_reference
from mocobench.runner.benchmarks import BENCHMARKS
from tests.helpers.records import make_record

LVIS = {"config_hash": "cfg-lvis", "max_iter": 180000, "ims_per_batch": 16, "base_lr": 0.02,
        "scaling": {"applied": False}, "amp": False, "builtin_synthetic": False}
METRICS = {"segm": {"AP": 24.0, "AP50": 37.0, "AP75": 25.0}}


def _table(norm: str | None):
    cfg = build_config(BENCHMARKS["lvis-mask-fpn-2x"], weights=None, norm=norm)
    protocol = dict(LVIS, norm=cfg.MODEL.RESNETS.NORM)
    recs = [make_record("lvis-mask-fpn-2x", "sup", "supervised", t, METRICS, protocol=protocol,
                        task="instance_seg", config=cfg.dump()) for t in range(2)]
    [table] = build_tables(recs, reference=load_reference())
    return table


def test_frozen_bn_row_goes_with_the_frozen_bn_variant():
    frozen = _table("FrozenBN")
    assert [r.label for r in frozen.reference] == ["supervised IN-1M (frozen BN)"]
    assert not any("differs from the paper's config" in n for n in frozen.notes)
    default = _table(None)
    labels = [r.label for r in default.reference]
    assert "supervised IN-1M (frozen BN)" not in labels
    assert "supervised IN-1M (tunable BN)" in labels and "MoCo IN-1M" in labels
