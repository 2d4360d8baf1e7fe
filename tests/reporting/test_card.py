"""The report card on records written for the purpose: two tasks where MoCo beats supervised beyond the
trials' noise, one where the gap is inside it, one where MoCo has no records. Means, stds, deltas and the
verdicts are checked against an independent computation (statistics + a numerically integrated t
density); the three formats parse back to the same numbers; the HTML page is self-contained."""
from __future__ import annotations

import base64
import io
import math
import shutil
import statistics
import subprocess
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mocobench.records import load_records, write_record
from mocobench.reporting import aggregate
from mocobench.reporting.card import build_card, render_csv, render_html, render_markdown, write_card
from tests.helpers.records import make_record
from tests.reporting.test_significance import integrated_cdf

SYN = {"config_hash": "cfg-demo", "max_iter": 80, "ims_per_batch": 4, "base_lr": 0.01, "scaling": "none",
       "amp": False, "builtin_synthetic": True}
# benchmark -> task, metric, {(label, kind): trial values}
DATA = {
    "voc-seg-fcn-synthetic": ("sem_seg", "sem_seg/mIoU", {
        ("sup", "supervised"): [60.0, 60.4, 59.8], ("moco", "moco"): [63.1, 63.5, 62.9],
        ("random", "random"): [40.0, 41.0, 39.5]}),                                       # MoCo wins
    "cityscapes-seg-fcn-synthetic": ("sem_seg", "sem_seg/mIoU", {
        ("sup", "supervised"): [50.0, 50.2], ("moco", "moco"): [53.0, 53.1]}),              # wins (n = 2)
    "cityscapes-mask-fpn-synthetic": ("instance_seg", "segm/AP", {
        ("sup", "supervised"): [20.0, 21.0, 19.5], ("moco", "moco"): [20.6, 21.4, 20.1]}),  # inside the noise
    "voc07-det-c4-synthetic": ("detection", "bbox/AP50", {
        ("sup", "supervised"): [40.0, 41.0], ("random", "random"): [30.0, 31.5]}),          # MoCo missing
}
BENCHMARKS = list(DATA)


def _metrics(task, key, value):
    group, name = key.split("/")
    if task == "detection":  # the detection card shows AP50 and AP
        return {"bbox": {"AP50": value, "AP": value - 20.0, "AP75": value - 25.0}}
    if task == "instance_seg":
        return {"bbox": {"AP": value + 1.0}, "segm": {"AP": value, "AP50": value + 10.0}}
    return {group: {name: value}}


def _write(results, data=DATA, protocol=SYN, config="# resolved config\n"):
    for bench, (task, key, rows) in data.items():
        for (label, kind), values in rows.items():
            for t, v in enumerate(values):
                write_record(make_record(bench, label, kind, t, _metrics(task, key, v), task=task,
                                         protocol=dict(protocol, benchmark=bench), config=config), results)


def _expected(bench, key, label):
    """mean, std, n, delta, significant: computed here from the trial values written (None: no records)."""
    task, headline, rows = DATA[bench]
    values = {lab: [aggregate.flatten_metrics(_metrics(task, headline, v))[key] for v in vals]
              for (lab, _), vals in rows.items()}
    if label not in values:
        return None
    a, b = values[label], values["sup"]
    mean, std = statistics.mean(a), statistics.stdev(a)
    if label == "sup":
        return mean, std, len(a), None, False
    delta = mean - statistics.mean(b)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    p = 2 * (1 - integrated_cdf(abs(delta) / math.sqrt(va + vb), df))
    return mean, std, len(a), delta, p < 0.05


@pytest.fixture(scope="module")
def card(tmp_path_factory):
    results = tmp_path_factory.mktemp("card")
    _write(results)
    return build_card(load_records(results), BENCHMARKS, reference=aggregate.load_reference())


def test_columns_rows_and_cells_match_an_independent_computation(card):
    assert [(c.benchmark, c.key) for c in card.columns] == [
        ("voc-seg-fcn-synthetic", "sem_seg/mIoU"), ("cityscapes-seg-fcn-synthetic", "sem_seg/mIoU"),
        ("cityscapes-mask-fpn-synthetic", "segm/AP"), ("voc07-det-c4-synthetic", "bbox/AP50"),
        ("voc07-det-c4-synthetic", "bbox/AP")]
    assert [r.label for r in card.rows] == ["random", "sup", "moco"]  # kind order: random, supervised, MoCo
    assert card.paper == []  # built-in data: never the paper's rows
    for row in card.rows:
        for col in card.columns:
            exp = _expected(col.benchmark, col.key, row.label)
            cell = row.cells.get(col.id)
            if exp is None:
                assert cell is None or cell.mean is None
                continue
            mean, std, n, delta, significant = exp
            assert (cell.mean, cell.std, cell.n) == (pytest.approx(mean), pytest.approx(std), n)
            assert cell.delta == (None if delta is None else pytest.approx(delta))
            assert (cell.verdict == 1) == (significant and delta > 0) and (cell.verdict == -1) == (
                significant and delta < 0)
    moco = {c.benchmark: c for c in card.columns}
    verdicts = [next(r for r in card.rows if r.label == "moco").cells[moco[b].id].verdict for b in BENCHMARKS[:3]]
    assert verdicts == [1, 1, 0]  # the records were written so: two wins beyond the noise, one inside it


def test_summary_counts_wins_beyond_the_noise_and_missing_tasks(card):
    summary = {line.split(":")[0]: line for line in card.summary()}
    assert "better than supervised on 2 of 3 tasks" in summary["moco"]
    assert "2 of 5 task column(s) missing" in summary["moco"]  # voc07's AP50 and AP
    assert "sup" not in summary  # the baseline says nothing about itself
    assert "better than supervised on 0 of 3 tasks, worse on 3" in summary["random"]
    assert any("Welch" in line for line in summary.values())
    # one note per reason the paper's rows are left out, naming every benchmark it applies to
    (no_paper,) = [n for n in card.notes if "paper's numbers are not shown" in n]
    assert "(synthetic built-in data)" in no_paper and all(b in no_paper for b in BENCHMARKS[:3])


def test_markdown_and_csv_show_the_same_numbers(card):
    md = render_markdown(card)
    moco_line = next(line for line in md.splitlines() if line.startswith("| moco |"))
    cells = [c.strip() for c in moco_line.strip("|").split("|")][1:]
    assert cells[0].startswith("63.2 ± 0.31 (n=3), Δ +3.1 ▲") and "▲" in cells[1]
    assert "Δ +0.5" in cells[2] and "▲" not in cells[2] and "▼" not in cells[2]
    assert cells[3] == cells[4] == "—"
    frame = pd.read_csv(io.StringIO(render_csv(card)))
    for _, line in frame[frame["source"] == "ours"].iterrows():
        exp = _expected(line["benchmark"], line["metric"], line["init"])
        if exp is None:
            assert pd.isna(line["mean"])
            continue
        assert line["mean"] == pytest.approx(exp[0]) and line["std"] == pytest.approx(exp[1])
        assert pd.isna(line["delta"]) if exp[3] is None else line["delta"] == pytest.approx(exp[3])


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells, self.images, self.external, self._row = [], [], [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr":
            self._row = a.get("class")
        if tag == "td":
            self.cells.append((self._row, a))
        if tag == "img":
            self.images.append(a["src"])
        for key in ("href", "src"):
            if key in a and not a[key].startswith("data:"):
                self.external.append(a[key])


def test_html_is_self_contained_with_the_figure_inlined(card, tmp_path):
    paths = write_card(card, tmp_path / "card")
    assert sorted(p.name for p in paths.values()) == ["card.csv", "card.html", "card.md", "card.png"]
    page = _Page()
    page.feed(paths["html"].read_text())
    assert page.external == []  # nothing to fetch: it opens from disk
    (src,) = page.images
    assert src.startswith("data:image/png;base64,")
    png = base64.b64decode(src.split(",", 1)[1])
    assert png == paths["png"].read_bytes()
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG" and img.width > 200 and img.height > 100
    ours = [a for row, a in page.cells if row == "ours" and "data-mean" in a]
    means = sorted(float(a["data-mean"]) for a in ours)
    expected = sorted(e[0] for b, (_, k, rows) in DATA.items() for col in card.columns if col.benchmark == b
                      for lab in {lab for lab, _ in rows} if (e := _expected(b, col.key, lab)) is not None)
    assert means == pytest.approx(expected)
    assert sum(a.get("data-verdict") == "1" for a in ours) == 2 + 0  # moco's two wins; random never wins
    assert render_html(card, png).count("<table") == 1


def test_paper_rows_with_their_daggers_on_a_comparable_protocol(tmp_path):
    """On the paper's protocol the paper's rows join the card, each number with a dagger unless it is at
    evidence level A, and their deltas are against the paper's own supervised row."""
    protocol = {"config_hash": "cfg-vocseg", "max_iter": 30000, "ims_per_batch": 16, "base_lr": 0.003,
                "scaling": "none", "amp": False, "builtin_synthetic": False}
    data = {"voc-seg-fcn": ("sem_seg", "sem_seg/mIoU", {("sup", "supervised"): [74.0, 74.3],
                                                        ("moco", "moco"): [72.9, 73.1]})}
    _write(tmp_path, data=data, protocol=protocol, config=None)
    card = build_card(load_records(tmp_path), ["voc-seg-fcn"], reference=aggregate.load_reference())
    paper = {r.label: r for r in card.paper}
    (col,) = card.columns
    assert paper["supervised IN-1M"].cells[col.id].mean == 74.4 and paper["supervised IN-1M"].cells[col.id].level == "B"
    assert paper["MoCo IN-1M"].cells[col.id].delta == pytest.approx(72.5 - 74.4)
    assert paper["MoCo IN-1M"].cells[col.id].verdict == 0  # one number per row: never a tested difference
    md = render_markdown(card)
    assert "74.4†" in md and "reported (paper)" in md
    assert "better than supervised on 0 of 1 tasks, worse on 1" in "\n".join(card.summary())


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no headless chromium on this machine")
def test_a_headless_browser_renders_the_table_and_the_figure(card, tmp_path):
    """The page as a browser shows it: its DOM holds the table's cells, and the screenshot shows the
    figure's markers (matplotlib's first colour) and the green of a win."""
    html_path = write_card(card, tmp_path / "card")["html"]
    base = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    dom = subprocess.run([*base, "--dump-dom", html_path.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "63.2 ± 0.31 (n=3), Δ +3.1 ▲" in dom and "better than supervised on 2 of 3 tasks" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([*base, f"--screenshot={shot}", "--window-size=1400,1400", "--hide-scrollbars",
                    html_path.as_uri()], capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)

    def count(rgb, tol=12):
        return int((np.abs(pixels - np.array(rgb)).max(axis=1) <= tol).sum())

    assert count((31, 119, 180)) > 20   # the figure's first series (tab:blue): the image was decoded and drawn
    assert count((227, 245, 227), tol=3) > 100  # a "better" cell's background


# The built-in data's pattern (docs: the 1x and 2x benchmarks run the same demo recipe with the same seeds, and an
# 80-iteration FCN predicts one class everywhere) against real data's, where no two benchmarks give identical trials.
def _builtin_like(copy_2x=True, constant=True):
    fpn = {("sup", "supervised"): [20.0, 21.0], ("moco", "moco"): [16.0, 16.4], ("random", "random"): [5.0, 5.6]}
    fpn_2x = fpn if copy_2x else {k: [v[0] + 0.05, v[1]] for k, v in fpn.items()}
    seg = {("sup", "supervised"): [11.8, 11.8], ("moco", "moco"): [11.8, 11.8], ("random", "random"): [11.8, 11.8]}
    if not constant:
        seg = {k: [v[0] + 0.3 * i, v[1] + 0.3 * i + 0.1] for i, (k, v) in enumerate(seg.items())}
    inst = {("sup", "supervised"): [0.0, 0.0], ("moco", "moco"): [0.0, 0.014], ("random", "random"): [0.0, 0.0]}
    if not constant:
        inst = {k: [v[0] + 2.0 + i, v[1] + 2.5 + i] for i, (k, v) in enumerate(inst.items())}
    return {"coco-mask-fpn-1x-synthetic": ("instance_seg", "segm/AP", fpn),
            "coco-mask-fpn-2x-synthetic": ("instance_seg", "segm/AP", fpn_2x),
            "voc-seg-fcn-synthetic": ("sem_seg", "sem_seg/mIoU", seg),
            "cityscapes-mask-fpn-synthetic": ("instance_seg", "segm/AP", inst)}


def test_copied_and_degenerate_columns_are_flagged_and_not_counted(tmp_path):
    data = _builtin_like()
    _write(tmp_path, data=data)
    card = build_card(load_records(tmp_path), list(data), reference=aggregate.load_reference())
    flags = {c.header: c.flag for c in card.columns}
    assert flags == {"COCO FPN 1x APbb": None, "COCO FPN 1x APmk": None,
                     "COCO FPN 2x APbb": "same as COCO FPN 1x APbb", "COCO FPN 2x APmk": "same as COCO FPN 1x APmk",
                     "VOC sem seg mIoU": "one value", "Cityscapes inst AP (mask)": "one value"}
    summary = {line.split(":")[0]: line for line in card.summary()}
    # counted: the two 1x columns, where supervised (20.5) is ahead of MoCo and random beyond the noise
    assert "better than supervised on 0 of 2 tasks, worse on 2" in summary["moco"]
    assert "better than supervised on 0 of 2 tasks, worse on 2" in summary["random"]
    (note,) = [n for n in card.notes if n.startswith("‡")]
    assert "COCO FPN 2x APbb repeats COCO FPN 1x APbb" in note and "VOC sem seg mIoU is 11.8 in every row" in note
    md = render_markdown(card)
    assert "| COCO FPN 2x APbb ‡ |" in md and "| VOC sem seg mIoU ‡ |" in md
    assert "| COCO FPN 1x APbb |" in md  # the original stays a counted column
    frame = pd.read_csv(io.StringIO(render_csv(card)))
    assert set(frame[frame["header"].str.endswith("‡")]["benchmark"]) == {
        "coco-mask-fpn-2x-synthetic", "voc-seg-fcn-synthetic", "cityscapes-mask-fpn-synthetic"}


def test_on_real_data_patterns_nothing_is_flagged(tmp_path):
    """Nearly equal is not equal: a 0.05 difference in one trial of the 2x run, a segmentation column whose rows
    differ, and one value at the card's precision that Welch's test still tells apart are all counted."""
    data = _builtin_like(copy_2x=False, constant=False)
    data["voc07-det-c4-synthetic"] = ("detection", "bbox/AP50", {("sup", "supervised"): [11.80, 11.80],
                                                                 ("moco", "moco"): [11.84, 11.84]})
    _write(tmp_path, data=data)
    card = build_card(load_records(tmp_path), list(data), reference=aggregate.load_reference())
    assert [c.flag for c in card.columns] == [None] * len(card.columns)
    assert not [n for n in card.notes if n.startswith("‡")]
    moco = next(r for r in card.rows if r.label == "moco")
    (ap50,) = [c for c in card.columns if c.header == "VOC07 det AP50"]
    assert moco.cell(ap50).verdict == 1  # 11.8 shown for both, yet beyond the (zero) noise: counted as a win
    summary = {line.split(":")[0]: line for line in card.summary()}
    assert f"of {sum(moco.cell(c).delta is not None for c in card.columns)} tasks" in summary["moco"]


def test_trials_that_predicted_nothing_are_named_on_the_card(tmp_path):
    data = {"voc07-det-c4-synthetic": DATA["voc07-det-c4-synthetic"]}
    _write(tmp_path, data=data)
    rec = make_record("voc07-det-c4-synthetic", "moco", "moco", 0, _metrics("detection", "bbox/AP50", 0.0),
                      protocol=dict(SYN, benchmark="voc07-det-c4-synthetic"), config="# resolved config\n")
    rec["metrics"] = {"bbox": {"AP50": 0.0, "AP": 0.0, "AP75": 0.0}}
    rec["metric_notes"] = {"bbox": "no predictions"}
    write_record(rec, tmp_path)
    card = build_card(load_records(tmp_path), list(data), reference=aggregate.load_reference())
    moco = next(r for r in card.rows if r.label == "moco")
    assert [moco.cell(c).mean for c in card.columns] == [0.0, 0.0]
    assert "voc07-det-c4-synthetic: moco: bbox: no predictions in trial(s) [0] (1 of 1)" in render_markdown(card)
