"""ViTDet's published rows (reporting/reference.yaml): the model-table row goes with records that kept the
benchmark's recipe; the pre-training ablation's rows (paper Table 4, run without relative positions and, for
supervised and random init, with other hyper-parameters) go only with records that ran that recipe, and rows
whose recipe the paper does not fully give go with no table."""
from __future__ import annotations

import pytest

from mocobench.reporting.aggregate import build_tables, load_reference
from mocobench.reporting.inputs import TableError
from tests.helpers.records import make_record, resolved_config

BENCH = "coco-mask-vitdet-100ep"
PROTOCOL = {"config_hash": "cfg-vitdet", "max_iter": 184375, "ims_per_batch": 64, "base_lr": 0.0001,
            "scaling": {"applied": False}, "amp": True, "builtin_synthetic": False}
METRICS = {"bbox": {"AP": 50.0}, "segm": {"AP": 44.0}}
TABLE4 = {"supervised ViT-B IN-1K (Table 4)": (47.6, 42.4), "supervised ViT-B IN-21K (Table 4)": (47.8, 42.6),
          "random init ViT-B (Table 4)": (48.1, 42.6)}


def _table(opts=()):
    config = resolved_config(BENCH, PROTOCOL, opts=list(opts))
    recs = [make_record(BENCH, "mae", "other", t, METRICS, protocol=PROTOCOL, task="instance_seg", config=config)
            for t in range(2)]
    [table] = build_tables(recs, reference=load_reference())
    return table


def _paper(table):
    return {r.label: (r.cells["bbox/AP"].mean, r.cells["segm/AP"].mean) for r in table.reference}


def test_table4_rows_load_with_their_source_level_and_recipe():
    rows = {r["label"]: r for r in load_reference()["benchmarks"][BENCH]["rows"]}
    for label, (box, mask) in TABLE4.items():
        row = rows[label]
        assert (row["metrics"]["bbox/AP"], row["metrics"]["segm/AP"]) == (box, mask)
        assert row["level"] == "A" and "Table 4" in row["source"]
        assert row["config"]["MODEL.VIT.USE_REL_POS"] is False and row["config_unknown"]
    assert rows["MAE ViT-B IN-1K"]["metrics"] == {"bbox/AP": 51.6, "segm/AP": 45.9}
    assert "config" not in rows["MAE ViT-B IN-1K"]


def test_benchmark_recipe_shows_only_the_model_table_row():
    table = _table()
    assert _paper(table) == {"MAE ViT-B IN-1K": (51.6, 45.9)}
    assert not any("differs from the paper's config" in n for n in table.notes)
    assert any("another recipe" in n and "supervised ViT-B IN-21K (Table 4)" in n for n in table.notes)


def test_ablation_recipe_shows_only_the_ablation_row():
    table = _table(["MODEL.VIT.USE_REL_POS", "False"])
    assert _paper(table) == {"MAE ViT-B IN-1K (Table 4: no rel. pos.)": (51.2, 45.5)}
    assert any("differs from the paper's config in 1 key(s)" in n for n in table.notes)


def test_rows_with_an_incomplete_recipe_are_never_shown():
    # the supervised rows' recipe as far as the paper gives it: not enough to show them as comparable
    table = _table(["MODEL.VIT.USE_REL_POS", "False", "SOLVER.BASE_LR", "8e-5"])
    assert table.reference == []
    assert any("not comparable" in n for n in table.notes)
    # and any other deviation shows no paper row either
    assert _table(["MODEL.VIT.WINDOW_SIZE", "7"]).reference == []


def test_recipe_condition_must_be_config_keys(tmp_path):
    bad = tmp_path / "ref.yaml"
    bad.write_text("source: x\nbenchmarks:\n  b:\n    rows:\n      - {label: a, kind: other, metrics: {bbox/AP: 1.0},"
                   " config: {rel_pos: false}}\n")
    with pytest.raises(TableError, match="'config' must map dotted config keys"):
        load_reference(bad)
