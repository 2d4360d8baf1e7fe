"""The report card: every benchmark of a suite run in one table shaped like the paper's Table 6.

One column per task and headline metric (HEADLINE), one row per initialisation, built from the per-benchmark
tables (reporting/aggregate.py) in the same model (reporting/model.py): each cell is the table's cell, mean ±
sample std over the trials (n) and the difference Δ to the supervised row of the same benchmark and protocol,
with Welch's t-test of Δ (reporting/significance.py): ▲ / ▼ only where it finds Δ beyond the trials' noise.
The paper's rows follow under their own heading where the protocol is comparable, by the rules of the tables
(never on the built-in data, never where the config differs from the paper's beyond the fewer-GPU scaling
rule), with a dagger on every number that two sources do not confirm. The summary line per row: "better
than supervised on k of n tasks".

Columns that cannot tell the initialisations apart are flagged and not counted in that tally (flag_columns):
a copy of an earlier column of the same metric (every row's mean, std and n identical: on the built-in data
the 1x and 2x schedules run the same recipe), and a degenerate column (every row shows the same value at the
card's precision and no difference is beyond the noise). The rule reads the numbers only: on real data,
where no two benchmarks give identical trials, nothing is flagged.

Rendering (Markdown, CSV, one self-contained HTML page): reporting/render.py; the figure: reporting/plots.py.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from mocobench.reporting import aggregate
from mocobench.reporting.model import KIND_ORDER, PAPER_SOURCE, Card, Cell, Column, Row, Table
from mocobench.reporting.render import CARD_FILE_NAMES as FILE_NAMES  # noqa: F401  (the card's own names)
from mocobench.reporting.render import card_csv as render_csv
from mocobench.reporting.render import card_html as render_html
from mocobench.reporting.render import card_markdown as render_markdown
from mocobench.reporting.render import write_card
from mocobench.reporting.significance import ALPHA

# The headline metrics of a task family, in the paper's order; a benchmark's card columns are those its
# table has (a family not listed here, or a benchmark without them: its table's first column).
HEADLINE: dict[str, tuple[str, ...]] = {
    "detection": ("bbox/AP50", "bbox/AP"),
    "instance_seg": ("bbox/AP", "segm/AP"),
    "sem_seg": ("sem_seg/mIoU",),
    "keypoints": ("keypoints/AP",),
}
SHORT = {  # short task names for the card's column headers (others: the benchmark's name)
    "voc0712-det-c4": "VOC07+12 det", "voc07-det-c4": "VOC07 det", "coco-mask-fpn-1x": "COCO FPN 1x",
    "coco-mask-fpn-2x": "COCO FPN 2x", "coco-mask-c4-1x": "COCO C4 1x", "coco-mask-c4-2x": "COCO C4 2x",
    "cityscapes-mask-fpn": "Cityscapes inst", "voc-seg-fcn": "VOC sem seg", "cityscapes-seg-fcn": "Cityscapes sem seg",
    "coco-kp-fpn-2x": "COCO keypoints", "lvis-mask-fpn-2x": "LVIS v0.5",
}
SHOWN_DECIMALS = 1  # the card shows means to 0.1: a degenerate column is one value at that precision


def headline_columns(columns: list[Column], task: str | None) -> list[Column]:
    """A benchmark's card columns: its task family's headline metrics that its table has, else its first."""
    keys = [c.key for c in columns]
    families = [HEADLINE[task]] if task in HEADLINE else list(HEADLINE.values())
    for family in families:
        chosen = [k for k in family if k in keys]
        if chosen:
            return [c for c in columns if c.key in chosen]
    return columns[:1]


def _registry_columns(bench: str) -> tuple[list[Column], str | None]:
    spec = aggregate.BENCHMARKS.get(aggregate.base_benchmark(bench))
    if spec is None:
        return [], None
    return [Column(k, h) for k, h in spec.table_columns.items()], spec.task


def _pick_table(tables: list[Table], protocol_hashes: set[str] | None) -> tuple[Table | None, list[str]]:
    """The table of one benchmark: the one holding the suite's protocols, else the one with the most trials."""
    if not tables:
        return None, []
    if protocol_hashes:
        mine = [t for t in tables if any(r.protocol_hash in protocol_hashes for r in t.rows)]
        if mine:
            tables = mine
    best = max(tables, key=lambda t: (sum(r.n for r in t.rows), t.table_id))
    notes = [f"{best.benchmark}: records under {len(tables)} protocols; the card shows protocol "
             f"{best.protocol_hash[:8]} (the full tables show them all)"] if len(tables) > 1 else []
    return best, notes


def _add_rows(target: dict[str, Row], rows: list[Row], columns: list[Column], source: str, tested: bool) -> None:
    """Copy the table's cells of these rows into the card's rows (by label), under the card's column ids.
    tested: keep the cells' Welch tests (ours, against a supervised row that is on the card)."""
    for r in rows:
        row = target.setdefault(r.label, Row(r.label, r.kind, source))
        for col in columns:
            cell = r.cells.get(col.key) or Cell()
            row.cells[col.id] = dataclasses.replace(cell, test=cell.test if tested else None)


def _benchmark_block(bench: str, table: Table | None, task: str | None, hashes: set[str] | None,
                     rows: dict[str, Row], paper: dict[str, Row]) -> list[Column]:
    """One benchmark's columns, its rows' cells added to `rows` (ours) and `paper`."""
    registry_cols, registry_task = _registry_columns(bench)
    cols = headline_columns(registry_cols if table is None else table.columns, task or registry_task)
    short = SHORT.get(aggregate.base_benchmark(bench), aggregate.base_benchmark(bench))
    bench_cols = [Column(c.key, f"{short} {c.header}", bench) for c in cols]
    if table is not None:
        ours = [r for r in table.rows if hashes is None or r.protocol_hash in hashes]
        has_base = any(r.label == table.baseline for r in ours)
        _add_rows(rows, ours, bench_cols, aggregate.OURS, tested=has_base)
        _add_rows(paper, table.reference, bench_cols, PAPER_SOURCE, tested=False)
    return bench_cols


def build_card(records: Iterable[dict[str, Any]], benchmarks: list[str], *, reference: dict | None = None,
               protocol_hashes: Iterable[str] | None = None, layout: dict | None = None) -> Card:
    """The card over `benchmarks` (records' benchmark names, in the card's column order) from these records.
    protocol_hashes: the suite's planned protocols (full hashes): rows of other protocols are left out."""
    hashes = set(protocol_hashes) if protocol_hashes is not None else None
    wanted = set(benchmarks)
    records = [r for r in records if r["benchmark"] in wanted]
    task_of = {r["benchmark"]: r["task"] for r in records}
    tables = aggregate.build_tables(records, layout=layout, reference=reference) if records else []
    columns: list[Column] = []
    rows: dict[str, Row] = {}
    paper: dict[str, Row] = {}
    baselines: dict[str, str] = {}
    notes: list[str] = []
    no_paper: dict[str, list[str]] = {}  # why -> benchmarks whose paper rows are left out (one note per reason)
    for bench in benchmarks:
        table, pick_notes = _pick_table([t for t in tables if t.benchmark == bench], hashes)
        notes += pick_notes
        if table is None:
            notes.append(f"{bench}: no records yet (its columns are empty)")
        columns += _benchmark_block(bench, table, task_of.get(bench), hashes, rows, paper)
        if table is not None and table.baseline:
            baselines[bench] = table.baseline
        if table is not None and not table.reference:
            why = "synthetic built-in data" if table.synthetic else "not comparable or not in reference.yaml"
            no_paper.setdefault(why, []).append(bench)
    notes += [f"the paper's numbers are not shown ({why}): {', '.join(benches)}" for why, benches in no_paper.items()]
    notes += _no_prediction_notes(records, benchmarks, hashes)
    card = Card(columns, sorted(rows.values(), key=lambda r: (KIND_ORDER.get(r.kind, 9), r.label)),
                sorted(paper.values(), key=lambda r: KIND_ORDER.get(r.kind, 9)), baselines, notes)
    if any(c.unverified for r in card.paper for c in r.cells.values()):
        card.notes.append("† the paper's number is not confirmed by two independent sources (level B or U in "
                          "reporting/reference.yaml); the paper's own text could not be checked")
    missing_sup = [b for b in benchmarks if b not in baselines]
    if missing_sup:
        card.notes.append(f"no supervised row (no Δ, no test) for: {', '.join(missing_sup)}")
    return flag_columns(card)


def _no_prediction_notes(records: list[dict[str, Any]], benchmarks: list[str], hashes: set[str] | None) -> list[str]:
    """The card's rows whose trials predicted nothing (AP recorded as 0), as the tables say it."""
    notes = []
    for bench in benchmarks:
        by_row: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            if r["benchmark"] == bench and (hashes is None or r["protocol_hash"] in hashes):
                by_row.setdefault(r["init"]["label"], []).append(r)
        notes += [f"{bench}: {n}" for label, recs in by_row.items() for n in aggregate.no_prediction_notes(label, recs)]
    return notes


# ------------------------------------------------------------------------------------------------ flags
def _stats(card: Card, col: Column) -> list[tuple]:
    return [(c.mean, c.std, c.n) for r in card.rows + card.paper for c in [r.cell(col)]]


def _degenerate(card: Card, col: Column) -> bool:
    """Every row of ours with a value shows the same number, and none differs beyond the noise."""
    cells = [r.cell(col) for r in card.rows if r.cell(col).mean is not None]
    return (len(cells) >= 2 and len({round(c.mean, SHOWN_DECIMALS) + 0.0 for c in cells}) == 1
            and all(c.verdict == 0 for c in cells))


def flag_columns(card: Card) -> Card:
    """Flag the columns that cannot tell the initialisations apart (see the module's docstring) and say so in
    the notes; flagged columns are shown, but not counted in the summary's tally."""
    why_notes = []
    for i, col in enumerate(card.columns):
        original = next((c for c in card.columns[:i] if c.flag is None and c.key == col.key
                         and any(m is not None for m, _, _ in _stats(card, c))
                         and _stats(card, c) == _stats(card, col)), None)
        if original is not None:
            col = dataclasses.replace(col, flag=f"same as {original.header}")
            why_notes.append(f"{col.header} repeats {original.header} in every row (identical mean, std and n)")
        elif _degenerate(card, col):
            value = next(r.cell(col).mean for r in card.rows if r.cell(col).mean is not None)
            col = dataclasses.replace(col, flag="one value")
            why_notes.append(f"{col.header} is {value:.{SHOWN_DECIMALS}f} in every row, no difference beyond the "
                             f"noise")
        card.columns[i] = col  # later columns compare against the flagged list
    if why_notes:
        card.notes.append(f"‡ not counted in the tally, they cannot tell the initialisations apart: "
                          f"{'; '.join(why_notes)}")
    return card


__all__ = ["ALPHA", "Card", "Cell", "Column", "Row", "build_card", "flag_columns", "headline_columns", "render_csv",
           "render_html", "render_markdown", "write_card"]
