"""The report card: every benchmark of a suite run in one table shaped like the paper's Table 6.

One column per task and headline metric (HEADLINE), one row per initialisation. Each cell: mean ± sample
std over the trials (n), and the difference Δ to the supervised row of the same benchmark and protocol,
marked ▲ / ▼ only where Welch's t-test (reporting/significance.py) finds it beyond the trials' noise. The
paper's rows follow under their own heading where the protocol is comparable, by the rules of the tables
(reporting/aggregate.py: never on the built-in data, never where the config differs from the paper's
beyond the fewer-GPU scaling rule), with a dagger on every number that two sources do not confirm. The
summary line per row: "better than supervised on k of n tasks". One figure: Δ vs supervised per task,
with the 95% confidence interval of Δ as error bars (an interval that excludes 0 = a counted difference).

Formats: Markdown, CSV (long form), and one self-contained HTML page (the figure inlined as a base64 PNG,
the style inline: it opens from disk with nothing else).
"""
from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mocobench.common.atomic import write_text
from mocobench.reporting import aggregate
from mocobench.reporting.aggregate import OURS, PAPER_SOURCE, Table
from mocobench.reporting.significance import ALPHA, TEST_NAME, Welch, welch

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
FILE_NAMES = {"md": "card.md", "csv": "card.csv", "html": "card.html", "png": "card.png"}
MISSING = "—"


@dataclass(frozen=True)
class CardColumn:
    benchmark: str   # the records' benchmark (with -synthetic on the built-in data)
    key: str         # metric key, e.g. bbox/AP
    header: str      # e.g. "VOC07+12 det AP50"

    @property
    def id(self) -> str:
        return f"{self.benchmark}:{self.key}"


@dataclass
class CardCell:
    mean: float | None = None
    std: float | None = None
    n: int = 0
    delta: float | None = None         # mean - supervised mean (same benchmark and protocol)
    test: Welch | None = None          # None: no test (a side with < 2 trials, or no supervised row)
    level: str | None = None           # paper rows: evidence level
    source: str | None = None

    @property
    def unverified(self) -> bool:
        return self.level is not None and self.level != "A"

    @property
    def verdict(self) -> int:
        """+1 / -1: better / worse than supervised beyond the noise; 0: inside it or not tested."""
        if self.test is None or not self.test.significant or not self.delta:
            return 0
        return 1 if self.delta > 0 else -1


@dataclass
class CardRow:
    label: str
    kind: str
    source: str = OURS
    cells: dict[str, CardCell] = field(default_factory=dict)   # column id -> cell

    def tally(self, columns: list[CardColumn]) -> tuple[int, int, int, int]:
        """(better, worse, compared, missing): columns beyond the noise either way, columns with a delta,
        and columns where this row has no value."""
        cells = [self.cells.get(c.id, CardCell()) for c in columns]
        compared = [c for c in cells if c.delta is not None]
        return (sum(c.verdict > 0 for c in compared), sum(c.verdict < 0 for c in compared), len(compared),
                sum(c.mean is None for c in cells))


@dataclass
class Card:
    columns: list[CardColumn]
    rows: list[CardRow]                    # ours
    paper: list[CardRow]                   # the paper's, where comparable
    baselines: dict[str, str]              # benchmark -> label of its supervised row
    notes: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        out = []
        for row in self.rows:
            better, worse, compared, missing = row.tally(self.columns)
            if not compared:
                if row.label not in self.baselines.values():  # the supervised rows themselves say nothing
                    out.append(f"{row.label}: no task to compare with a supervised row")
                continue
            extra = f", worse on {worse}" if worse else ""
            extra += f"; {missing} of {len(self.columns)} task column(s) missing" if missing else ""
            out.append(f"{row.label}: better than supervised on {better} of {compared} tasks{extra} "
                       f"(a task: one column, task x headline metric; {TEST_NAME})")
        return out


def headline_columns(columns: list[aggregate.Column], task: str | None) -> list[aggregate.Column]:
    """A benchmark's card columns: its task family's headline metrics that its table has, else its first."""
    keys = [c.key for c in columns]
    families = [HEADLINE[task]] if task in HEADLINE else list(HEADLINE.values())
    for family in families:
        chosen = [k for k in family if k in keys]
        if chosen:
            return [c for c in columns if c.key in chosen]
    return columns[:1]


def _registry_columns(bench: str) -> tuple[list[aggregate.Column], str | None]:
    spec = aggregate.BENCHMARKS.get(aggregate.base_benchmark(bench))
    if spec is None:
        return [], None
    return [aggregate.Column(k, h) for k, h in spec.table_columns.items()], spec.task


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


def build_card(records: Iterable[dict[str, Any]], benchmarks: list[str], *, reference: dict | None = None,
               protocol_hashes: Iterable[str] | None = None, layout: dict | None = None) -> Card:
    """The card over `benchmarks` (records' benchmark names, in the card's column order) from these records.
    protocol_hashes: the suite's planned protocols (full hashes): rows of other protocols are left out."""
    hashes = set(protocol_hashes) if protocol_hashes is not None else None
    wanted = set(benchmarks)
    records = [r for r in records if r["benchmark"] in wanted]
    task_of = {r["benchmark"]: r["task"] for r in records}
    tables = aggregate.build_tables(records, layout=layout, reference=reference) if records else []
    columns: list[CardColumn] = []
    rows: dict[str, CardRow] = {}
    paper: dict[str, CardRow] = {}
    baselines: dict[str, str] = {}
    notes: list[str] = []
    no_paper: dict[str, list[str]] = {}  # why -> benchmarks whose paper rows are left out (one note per reason)
    for bench in benchmarks:
        table, pick_notes = _pick_table([t for t in tables if t.benchmark == bench], hashes)
        notes += pick_notes
        registry_cols, task = _registry_columns(bench)
        if table is None:
            notes.append(f"{bench}: no records yet (its columns are empty)")
            cols = headline_columns(registry_cols, task)
        else:
            cols = headline_columns(table.columns, task_of.get(bench, task))
        short = SHORT.get(aggregate.base_benchmark(bench), aggregate.base_benchmark(bench))
        bench_cols = [CardColumn(bench, c.key, f"{short} {c.header}") for c in cols]
        columns += bench_cols
        if table is None:
            continue
        ours = [r for r in table.rows if hashes is None or r.protocol_hash in hashes]
        base_row = next((r for r in ours if r.label == table.baseline), None)
        if table.baseline:
            baselines[bench] = table.baseline
        for r in ours:
            row = rows.setdefault(r.label, CardRow(r.label, r.kind))
            for col in bench_cols:
                c = r.cells.get(col.key) or aggregate.Cell()
                ref = base_row.cells.get(col.key) if base_row is not None and r is not base_row else None
                test = None
                if ref is not None and c.mean is not None and ref.mean is not None:
                    test = welch(c.mean, c.std, c.n, ref.mean, ref.std, ref.n)
                row.cells[col.id] = CardCell(c.mean, c.std, c.n, c.delta, test)
        for r in table.reference:
            row = paper.setdefault(r.label, CardRow(r.label, r.kind, PAPER_SOURCE))
            for col in bench_cols:
                c = r.cells.get(col.key) or aggregate.Cell()
                row.cells[col.id] = CardCell(c.mean, None, c.n if c.mean is not None else 0, c.delta, None,
                                             c.level, c.source)
        if not table.reference:
            why = "synthetic built-in data" if table.synthetic else "not comparable or not in reference.yaml"
            no_paper.setdefault(why, []).append(bench)
    notes += [f"the paper's numbers are not shown ({why}): {', '.join(benches)}" for why, benches in no_paper.items()]
    order = aggregate.KIND_ORDER
    card = Card(columns, sorted(rows.values(), key=lambda r: (order.get(r.kind, 9), r.label)),
                sorted(paper.values(), key=lambda r: order.get(r.kind, 9)), baselines, notes)
    if any(c.unverified for r in card.paper for c in r.cells.values()):
        card.notes.append("† the paper's number is not confirmed by two independent sources (level B or U in "
                          "reporting/reference.yaml); the paper's own text could not be checked")
    missing_sup = [b for b in benchmarks if b not in baselines]
    if missing_sup:
        card.notes.append(f"no supervised row (no Δ, no test) for: {', '.join(missing_sup)}")
    return card


# ------------------------------------------------------------------------------------------------ text
STAT_NOTE = (f"Each cell: mean ± sample std over n trials; Δ: difference to the supervised row of the same "
             f"benchmark and protocol, ▲ / ▼ where {TEST_NAME} finds it beyond the trials' noise (needs n ≥ 2 on "
             f"both rows); unmarked Δ: inside the noise or not testable.")


def _mark(cell: CardCell) -> str:
    return {1: " ▲", -1: " ▼", 0: ""}[cell.verdict]


def cell_text(cell: CardCell) -> str:
    if cell.mean is None:
        return MISSING
    text = f"{cell.mean:.1f}" + (f" ± {cell.std:.2f}" if cell.std is not None else "") + ("†" if cell.unverified
                                                                                       else "")
    if cell.n and cell.level is None:
        text += f" (n={cell.n})"
    if cell.delta is not None:
        text += f", Δ {cell.delta:+.1f}{_mark(cell)}"
    return text


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(card: Card, title: str = "Report card") -> str:
    heads = ["initialisation"] + [c.header for c in card.columns]
    out = [f"# {title}", "", STAT_NOTE, "", "| " + " | ".join(map(_md, heads)) + " |", "|" + "---|" * len(heads)]
    for i, rows in enumerate([card.rows, card.paper]):
        if i and rows:
            out.append("| " + " | ".join([f"**{PAPER_SOURCE}**"] + [""] * len(card.columns)) + " |")
        for r in rows:
            label = r.label if r.source == OURS else f"{r.label} — {PAPER_SOURCE}"
            out.append("| " + " | ".join([_md(label)] + [_md(cell_text(r.cells.get(c.id, CardCell())))
                                                         for c in card.columns]) + " |")
    out += ["", "**Summary**", ""] + [f"- {_md(s)}" for s in card.summary() or ["no rows yet"]]
    if card.notes:
        out += ["", "Notes:"] + [f"- {_md(n)}" for n in card.notes]
    return "\n".join(out) + "\n"


CSV_COLUMNS = ["source", "init", "init_kind", "benchmark", "metric", "header", "mean", "std", "n", "delta",
               "se", "df", "p", "ci95", "verdict", "level", "reference_source"]


def card_frame(card: Card) -> pd.DataFrame:
    lines = []
    for r in card.rows + card.paper:
        for c in card.columns:
            cell = r.cells.get(c.id, CardCell())
            t = cell.test
            lines.append({"source": r.source, "init": r.label, "init_kind": r.kind, "benchmark": c.benchmark,
                          "metric": c.key, "header": c.header, "mean": cell.mean, "std": cell.std,
                          "n": cell.n if cell.mean is not None else None, "delta": cell.delta,
                          "se": t.se if t else None, "df": t.df if t else None, "p": t.p if t else None,
                          "ci95": t.ci if t else None, "verdict": cell.verdict, "level": cell.level,
                          "reference_source": cell.source})
    return pd.DataFrame(lines, columns=CSV_COLUMNS).astype({"n": "Int64"})


def render_csv(card: Card) -> str:
    return card_frame(card).to_csv(index=False)


# ------------------------------------------------------------------------------------------------ figure
def delta_figure(card: Card) -> Figure:
    """Δ vs supervised per task column, one marker series per non-supervised row of ours, error bars: the
    95% confidence interval of Δ (Welch); columns without a test get the point alone."""
    rows = [r for r in card.rows if any(r.cells.get(c.id, CardCell()).delta is not None for c in card.columns)]
    x = np.arange(len(card.columns))
    fig = Figure(figsize=(max(6.0, 1.0 + 0.9 * len(card.columns)), 4.2))
    ax = fig.add_subplot()
    ax.axhline(0.0, color="gray", linewidth=0.8)
    width = 0.6 / max(len(rows), 1)
    for i, r in enumerate(rows):
        cells = [r.cells.get(c.id, CardCell()) for c in card.columns]
        ys = [np.nan if c.delta is None else c.delta for c in cells]
        errs = [np.nan if c.test is None else c.test.ci for c in cells]
        ax.errorbar(x - 0.3 + width * (i + 0.5), ys, yerr=errs, fmt="o", capsize=3, label=r.label)
    ax.set_xticks(x, [c.header for c in card.columns], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("Δ vs supervised (points), 95% CI")
    ax.set_title("Difference to the supervised initialisation per task", fontsize=9)
    if rows:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return fig


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ HTML
def _html_cell(cell: CardCell) -> str:
    attrs = ""
    if cell.mean is not None:
        attrs += f' data-mean="{cell.mean!r}" data-n="{cell.n}"'
    if cell.std is not None:
        attrs += f' data-std="{cell.std!r}"'
    if cell.delta is not None:
        attrs += f' data-delta="{cell.delta!r}" data-verdict="{cell.verdict}"'
    if cell.test is not None:
        attrs += f' data-p="{cell.test.p!r}"'
    if cell.level is not None:
        attrs += f' data-level="{cell.level}"' + (f' title="{html.escape(cell.source)}"' if cell.source else "")
    cls = {1: "better", -1: "worse", 0: ""}[cell.verdict]
    return f'<td class="{cls}"{attrs}>{html.escape(cell_text(cell))}</td>'


def render_html(card: Card, png: bytes, title: str = "Report card") -> str:
    """One page, nothing outside it: inline style, the figure as a data: URI."""
    heads = ["initialisation"] + [c.header for c in card.columns]
    out = ["<!DOCTYPE html>", f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
           "<style>body{font-family:sans-serif;margin:1.5em} table{border-collapse:collapse;margin:1em 0}"
           " td,th{border:1px solid #bbb;padding:3px 8px;text-align:right} td:first-child{text-align:left}"
           " td.better{background:#e3f5e3} td.worse{background:#f8e1e1} tr.paper td{font-style:italic;"
           "background:#f4f4f4} tr.section th{text-align:left} img{max-width:100%}</style>",
           "</head><body>", f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(STAT_NOTE)}</p>",
           '<table id="card"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in heads) + "</tr></thead>"
           "<tbody>"]
    for i, rows in enumerate([card.rows, card.paper]):
        if i and rows:
            out.append(f'<tr class="section"><th colspan="{len(heads)}">{PAPER_SOURCE}</th></tr>')
        for r in rows:
            cls = "paper" if r.source == PAPER_SOURCE else "ours"
            out.append(f'<tr class="{cls}" data-kind="{r.kind}"><td>{html.escape(r.label)}</td>'
                       + "".join(_html_cell(r.cells.get(c.id, CardCell())) for c in card.columns) + "</tr>")
    out.append("</tbody></table>")
    out.append('<ul id="summary">' + "".join(f"<li>{html.escape(s)}</li>" for s in card.summary()) + "</ul>")
    data = base64.b64encode(png).decode("ascii")
    out.append(f'<img id="delta-figure" alt="difference to supervised per task, 95% confidence intervals" '
               f'src="data:image/png;base64,{data}">')
    if card.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in card.notes) + "</ul>")
    out += ["</body></html>", ""]
    return "\n".join(out)


def write_card(card: Card, out_dir: str | os.PathLike, title: str = "Report card") -> dict[str, Path]:
    """card.md, card.csv, card.html (self-contained) and card.png into out_dir (derived files: replaced)."""
    out_dir = Path(out_dir)
    png = figure_png(delta_figure(card))
    paths = {k: out_dir / v for k, v in FILE_NAMES.items()}
    write_text(paths["md"], render_markdown(card, title))
    write_text(paths["csv"], render_csv(card))
    write_text(paths["html"], render_html(card, png, title))
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = paths["png"].with_suffix(".png.tmp")
    tmp.write_bytes(png)
    os.replace(tmp, paths["png"])
    return paths


__all__ = ["ALPHA", "Card", "CardCell", "CardColumn", "CardRow", "build_card", "render_csv", "render_html",
           "render_markdown", "write_card"]
