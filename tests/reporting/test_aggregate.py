"""Aggregation of hand-made records into tables: golden statistics, deltas, and the guardrails."""
from __future__ import annotations

import statistics

import pytest

from mocobench.records import load_records, write_record
from mocobench.reporting import aggregate
from tests.helpers.records import PAPER_VOC, VOC_TRIALS, det, make_record, write_voc

METRICS = ("AP50", "AP", "AP75")


def _tables(results, reference=True):
    ref = aggregate.load_reference() if reference else None
    return aggregate.build_tables(load_records(results), reference=ref)


def _expected(label: str, metric: str) -> list[float]:
    return [m["bbox"][metric] for (lab, _), ms in VOC_TRIALS.items() if lab == label for m in ms]


def test_golden_means_stds_deltas_and_marks(tmp_path):
    write_voc(tmp_path)
    [t] = _tables(tmp_path)
    assert [r.label for r in t.rows] == ["random", "supervised-tv", "moco-v2-200ep"]  # the paper's row order
    assert t.baseline == "supervised-tv"
    assert [c.header for c in t.columns] == ["AP50", "AP", "AP75"]
    for row in t.rows:
        assert row.n == len(_expected(row.label, "AP"))
        for metric in METRICS:
            values = _expected(row.label, metric)
            sup = statistics.mean(_expected("supervised-tv", metric))
            cell = row.cells[f"bbox/{metric}"]
            assert cell.n == len(values)
            assert cell.mean == pytest.approx(statistics.mean(values), abs=1e-12)
            assert cell.std == pytest.approx(statistics.stdev(values), abs=1e-12)  # sample std, ddof=1
            if row.kind == "supervised":
                assert cell.delta is None
            else:
                delta = statistics.mean(values) - sup
                assert cell.delta == pytest.approx(delta, abs=1e-12)
                assert cell.mark == (0 if abs(delta) < 0.5 else (1 if delta > 0 else -1))
    # A hand-checked case: MoCo AP50 (82.3, 82.6, 82.2) vs supervised (81.1, 81.5, 81.2): +1.1, marked green.
    moco = t.rows[2].cells["bbox/AP50"]
    assert moco.delta == pytest.approx(82.3666666667 - 81.2666666667, abs=1e-9) and moco.mark == 1


def test_mark_threshold_is_half_a_point(tmp_path):
    trials = {("supervised", "supervised"): [det(50.0, 40.0, 30.0)],
              ("a", "moco"): [det(50.5, 39.5, 30.49)]}
    write_voc(tmp_path, trials=trials)
    [t] = _tables(tmp_path, reference=False)
    cells = t.rows[1].cells
    assert (cells["bbox/AP50"].mark, cells["bbox/AP"].mark, cells["bbox/AP75"].mark) == (1, -1, 0)
    assert cells["bbox/AP"].std is None and cells["bbox/AP"].n == 1  # one trial: no std


def test_different_protocols_are_never_averaged_together(tmp_path):
    write_voc(tmp_path)
    # Same benchmark and labels, but fewer GPUs with the official advice (batch 8, lr 0.01, 2x iterations).
    other = dict(PAPER_VOC, ims_per_batch=8, base_lr=0.01, max_iter=48000,
                 scaling={"applied": True, "factor": 2.0, "num_devices": 1, "ims_per_device": 8})
    trials = {("supervised-tv", "supervised"): [det(70.0, 40.0, 45.0)],
              ("moco-v2-200ep", "moco"): [det(72.0, 43.0, 48.0)]}
    write_voc(tmp_path, protocol=other, trials=trials)
    tables = _tables(tmp_path)
    assert len(tables) == 2
    assert len({t.protocol_hash for t in tables}) == 2 and len({t.table_id for t in tables}) == 2
    small = next(t for t in tables if t.protocol["ims_per_batch"] == 8)
    paper = next(t for t in tables if t.protocol["ims_per_batch"] == 16)
    # The paper-protocol table still has exactly its own trials.
    assert paper.rows[1].cells["bbox/AP50"].mean == pytest.approx(statistics.mean(_expected("supervised-tv", "AP50")))
    assert small.rows[1].cells["bbox/AP50"].mean == pytest.approx(72.0)
    assert small.rows[1].cells["bbox/AP50"].delta == pytest.approx(2.0)  # against its own supervised row
    for t in tables:
        note = " ".join(t.notes)
        assert "not averaged together" in note
        for field in ("base_lr", "ims_per_batch", "max_iter", "scaling"):
            assert field in note
        assert "amp" not in note.split("Differing fields:")[1]  # only what differs is named
    # Scaled by the documented fewer-GPU rule and nothing else: the reported rows stay, with a note saying so.
    assert small.reference and paper.reference
    assert any("fewer-GPU scaling rule applied" in n for n in small.notes)
    assert not any("fewer-GPU" in n for n in paper.notes)
    assert not any("differs from the paper's config" in n for n in small.notes + paper.notes)


def test_amp_alone_splits_tables(tmp_path):
    write_voc(tmp_path)
    write_voc(tmp_path, protocol=dict(PAPER_VOC, amp=True), trials={("supervised-tv", "supervised"): [det(1, 2, 3)]})
    tables = _tables(tmp_path, reference=False)
    assert len(tables) == 2
    assert all("amp" in t.title for t in tables)  # the title says which is which


def test_missing_trials_and_missing_metrics_show_as_missing(tmp_path):
    trials = {("supervised", "supervised"): [det(80, 50, 55), det(81, 51, 56), det(82, 52, 57)],
              ("moco", "moco"): [det(83, 54, 60)]}
    write_voc(tmp_path, trials=trials)
    # Trial 2 of moco exists but lacks AP75; trial 1 is missing altogether.
    write_record(make_record("voc0712-det-c4", "moco", "moco", 2, {"bbox": {"AP50": 85.0, "AP": 56.0}}), tmp_path)
    [t] = _tables(tmp_path, reference=False)
    moco = t.rows[1]
    assert moco.trials == [0, 2] and moco.missing_trials == [1]
    assert moco.cells["bbox/AP50"].n == 2 and moco.cells["bbox/AP50"].mean == pytest.approx(84.0)
    assert moco.cells["bbox/AP75"].n == 1 and moco.cells["bbox/AP75"].mean == pytest.approx(60.0)
    notes = " ".join(t.notes)
    assert "moco: trial(s) [1] missing (2 of 3)" in notes
    assert "AP75 is missing or not finite in 1 of 2 trials" in notes


def test_no_supervised_row_means_no_deltas_and_a_note(tmp_path):
    write_voc(tmp_path, trials={("random", "random"): [det(60, 33, 33)], ("moco", "moco"): [det(82, 57, 63)]})
    [t] = _tables(tmp_path, reference=False)
    assert t.baseline is None
    assert all(c.delta is None for r in t.rows for c in r.cells.values())
    assert any("no supervised row" in n for n in t.notes)


def test_synthetic_tables_get_no_reference_rows(tmp_path):
    write_voc(tmp_path, protocol=dict(PAPER_VOC, builtin_synthetic=True, max_iter=20))
    write_voc(tmp_path, benchmark="voc0712-det-c4-synthetic")  # suffix alone also marks it synthetic
    tables = _tables(tmp_path)
    assert len(tables) == 2
    for t in tables:
        assert t.synthetic and t.reference == []
        assert "not comparable" in t.title
        assert any("reported numbers are not shown" in n for n in t.notes)


def test_reference_rows_are_labelled_and_flagged(tmp_path):
    write_voc(tmp_path)
    [t] = _tables(tmp_path)
    ref = {r.label: r for r in t.reference}
    assert all(r.source == aggregate.PAPER_SOURCE for r in t.reference)
    assert ref["supervised IN-1M"].cells["bbox/AP50"].mean == 81.3
    assert ref["MoCo IG-1B"].unverified and not ref["MoCo v2 IN-1M 200ep"].unverified
    # Reported deltas are against the reported supervised row, never against ours.
    assert ref["MoCo v2 IN-1M 200ep"].cells["bbox/AP"].delta == pytest.approx(57.0 - 53.5)
    assert [r.kind for r in t.reference][:2] == ["random", "supervised"]


def test_coco_reference_columns_and_their_evidence_levels(tmp_path):
    """The COCO AP50/AP75 columns are filled from docs/protocol.md; each number carries its own evidence level:
    the dagger sits on every number that is not at level A (C4 1x MoCo: APbb/APmk A, the other four U)."""
    coco = {"bbox": {"AP": 38.0, "AP50": 58.0, "AP75": 41.0}, "segm": {"AP": 34.0, "AP50": 55.0, "AP75": 36.0}}
    for bench in ("coco-mask-fpn-1x", "coco-mask-c4-1x"):
        write_record(make_record(bench, "sup", "supervised", 0, coco, task="instance_seg",
                                 protocol=dict(PAPER_VOC, max_iter=90000)), tmp_path)
    fpn, c4 = sorted(_tables(tmp_path), key=lambda t: t.benchmark != "coco-mask-fpn-1x")
    assert [c.header for c in fpn.columns] == ["APbb", "AP50bb", "AP75bb", "APmk", "AP50mk", "AP75mk"]
    sup = next(r for r in fpn.reference if r.kind == "supervised")
    assert [sup.cells[k].mean for k in ("bbox/AP", "bbox/AP50", "bbox/AP75", "segm/AP", "segm/AP50", "segm/AP75")] \
        == [38.9, 59.6, 42.7, 35.4, 56.5, 38.1]
    assert not any("shown as missing" in n for n in fpn.notes)
    assert all(c.unverified for c in sup.cells.values()) and sup.unverified  # level B: one source
    moco = next(r for r in c4.reference if r.label == "MoCo IN-1M")
    assert {k for k, c in moco.cells.items() if not c.unverified} == {"bbox/AP", "segm/AP"}
    assert moco.cells["bbox/AP50"].level == "U" and moco.cells["bbox/AP"].level == "A" and moco.unverified
    assert not any(c.unverified for c in next(r for r in c4.reference if r.kind == "supervised").cells.values())


def test_one_label_several_checkpoints_are_never_averaged(tmp_path):
    # A runner that reused one label for two checkpoints of a run (trials 0-1 at epoch 100, 2-3 at 200).
    for epoch, ap, trials in ((100, 50.0, (0, 1)), (200, 54.0, (2, 3))):
        for trial in trials:
            write_record(make_record("voc0712-det-c4", "moco-run", "moco", trial, det(80, ap + trial % 2, 60),
                                     pretrain={"run": "output/pretrain/run1", "epoch": epoch}), tmp_path)
    [t] = _tables(tmp_path, reference=False)
    assert [r.label for r in t.rows] == ["moco-run @ep100", "moco-run @ep200"]
    assert [r.cells["bbox/AP"].mean for r in t.rows] == [pytest.approx(50.5), pytest.approx(54.5)]
    assert [r.cells["bbox/AP"].n for r in t.rows] == [2, 2]
    assert any("separate rows" in n for n in t.notes)


def test_unknown_benchmark_uses_its_task_columns(tmp_path):
    write_record(make_record("ade20k-semseg", "sup", "supervised", 0, {"sem_seg": {"mIoU": 40.0, "pACC": 80.0}},
                             task="sem_seg"), tmp_path)
    [t] = _tables(tmp_path)
    assert [c.key for c in t.columns] == ["sem_seg/mIoU", "sem_seg/pACC"]
    assert t.reference == [] and t.title == "ade20k-semseg"


def test_bad_reference_file_is_reported(tmp_path):
    bad = tmp_path / "ref.yaml"
    bad.write_text("benchmarks:\n  voc0712-det-c4:\n    rows:\n"
                   "      - {label: x, kind: selfsup, metrics: {bbox/AP: 1}}\n")
    with pytest.raises(aggregate.TableError, match="kind must be one of"):
        aggregate.load_reference(bad)


def test_init_specific_config_shares_the_table_with_a_note(tmp_path):
    # MSRA weights bring their own config delta (BGR input): another config_hash, same schedule.
    write_voc(tmp_path)
    msra = dict(PAPER_VOC, config_hash="cfg-voc0712-msra")
    write_record(make_record("voc0712-det-c4", "msra-R50", "supervised", 0, det(81.0, 53.0, 58.0), protocol=msra),
                 tmp_path)
    [t] = _tables(tmp_path, reference=False)
    assert [r.label for r in t.rows] == ["random", "msra-R50", "supervised-tv", "moco-v2-200ep"]
    assert len({r.protocol_hash for r in t.rows}) == 4  # each init its own full protocol (weights hash)
    assert any("resolved configs differ" in n and "msra-R50" in n for n in t.notes)
    assert any("several supervised rows" in n for n in t.notes)


def test_one_label_under_two_configs_is_two_rows(tmp_path):
    write_voc(tmp_path)
    changed = dict(PAPER_VOC, config_hash="cfg-voc0712-opts")  # e.g. run again with different --opts
    write_record(make_record("voc0712-det-c4", "moco-v2-200ep", "moco", 0, det(70.0, 40.0, 45.0), protocol=changed),
                 tmp_path)
    [t] = _tables(tmp_path, reference=False)
    moco = [r for r in t.rows if r.label.startswith("moco-v2-200ep")]
    assert len(moco) == 2 and all("[protocol " in r.label for r in moco)
    means = sorted(r.cells["bbox/AP50"].mean for r in moco)
    assert means == [pytest.approx(70.0), pytest.approx(statistics.mean(_expected("moco-v2-200ep", "AP50")))]


def test_per_category_metrics_are_summarised_not_listed(tmp_path):
    classes = ["disc", "square", "triangle", "star"]
    per_class = {f"AP-{c}": 10.0 + i for i, c in enumerate(classes)}
    trials = {("random", "random"): [{"bbox": {**det(60, 33, 33)["bbox"], **per_class, "odd": 1.0}}]}
    write_voc(tmp_path, trials=trials)
    [t] = _tables(tmp_path, reference=False)
    notes = " ".join(t.notes)
    assert "per-category AP of 4 categories (bbox) is in the result records" in notes
    assert not any(f"AP-{c}" in notes for c in classes)           # a count, not 4 names
    assert "metrics not shown in this table: bbox/odd" in notes    # other metrics are still named


def test_trials_that_predicted_nothing_are_named_in_the_table(tmp_path):
    """A trial recorded with metric_notes {"bbox": "no predictions"} (AP 0, mocobench/records.py) counts as 0 in
    the mean, and the table's notes say which trials of which row predicted nothing."""
    for t, ap in enumerate([0.0, 6.0]):
        rec = make_record("voc0712-det-c4", "moco-demo", "moco", t, det(ap, ap / 2, ap / 3))
        if ap == 0.0:
            rec["metric_notes"] = {"bbox": "no predictions"}
        write_record(rec, tmp_path)
    write_record(make_record("voc0712-det-c4", "sup", "supervised", 0, det(10.0, 5.0, 3.0)), tmp_path)
    [t] = _tables(tmp_path, reference=False)
    moco = next(r for r in t.rows if r.label == "moco-demo")
    assert moco.cells["bbox/AP50"].mean == pytest.approx(3.0) and moco.cells["bbox/AP50"].n == 2
    (note,) = [n for n in t.notes if "no predictions" in n]
    assert note.startswith("moco-demo: bbox: no predictions in trial(s) [0] (1 of 2)")
    assert not [n for n in t.notes if n.startswith("sup:") and "predictions" in n]
