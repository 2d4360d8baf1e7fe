"""Every text the reporting writes, from the one model (reporting/model.py), and writing it (derived files,
replaced atomically).

- The tables -> Markdown, CSV, LaTeX and HTML. Every format shows the same thing: mean +- sample std (ddof=1)
  per metric, the trial count, the delta against the supervised row in parentheses, marked where
  |delta| >= 0.5 (a sign in Markdown, green/red in LaTeX and HTML), the paper's reported rows apart under
  their own heading, and the table's notes. CSV is the long form (one line per row and metric) for pandas.
- The report card -> Markdown, CSV (long form) and one self-contained HTML page (the figure inlined as a
  base64 PNG, the style inline: it opens from disk with nothing else); its Δ is marked by Welch's test.
"""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import pandas as pd

from mocobench.common.atomic import atomic_write, write_text
from mocobench.reporting.model import MARK_THRESHOLD, OURS, PAPER_SOURCE, Card, Cell, Column, Row, Table
from mocobench.reporting.plots import delta_figure, figure_png
from mocobench.reporting.significance import TEST_NAME

MISSING = "—"
MD_MARK = {1: " ▲", -1: " ▼", 0: ""}
STAT_NOTE = (f"mean ± sample std (ddof=1) over n trials; no std when n = 1. (Δ): difference to the supervised "
             f"row of the same protocol; marked where |Δ| ≥ {MARK_THRESHOLD}")
FILE_NAMES = {"md": "tables.md", "csv": "tables.csv", "tex": "tables.tex", "html": "tables.html"}


def value_text(cell: Cell, pm: str = " ± ") -> str:
    """mean ± std; a reported number not at evidence level A carries a dagger."""
    if cell.mean is None:
        return MISSING
    return f"{cell.mean:.1f}" + (f"{pm}{cell.std:.2f}" if cell.std is not None else "") + \
        ("†" if cell.unverified else "")


def delta_text(cell: Cell) -> str:
    return "" if cell.delta is None else f"({cell.delta:+.1f})"


def trials_text(row: Row) -> str:
    if row.source == PAPER_SOURCE:
        return ""
    total = row.n + len(row.missing_trials)
    return str(row.n) if not row.missing_trials else f"{row.n} of {total}"


def _partial(cell: Cell, row: Row) -> str:
    """Flag a cell averaged over fewer trials than its row has."""
    return f" [n={cell.n}]" if row.source != PAPER_SOURCE and 0 < cell.n < row.n else ""


def _row_label(row: Row, dagger: str) -> str:
    label = row.label if row.source != PAPER_SOURCE else f"{row.label} — {PAPER_SOURCE}"
    return label + (dagger if row.unverified else "")


def _caption(t: Table) -> str:
    base = f"against {t.baseline!r}" if t.baseline else "none (no supervised row)"
    return f"benchmark {t.benchmark}, protocol {t.protocol_hash[:12]}; deltas {base}"


# ----------------------------------------------------------------------------------------------- Markdown
def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(tables: list[Table]) -> str:
    out = ["# Transfer results", "", STAT_NOTE + " (▲ / ▼).", ""]
    for t in tables:
        heads = ["initialisation", "trials"] + [c.header for c in t.columns]
        out += [f"## {_md_escape(t.title)}", "", f"_{_caption(t)}_", "",
                "| " + " | ".join(_md_escape(h) for h in heads) + " |", "|" + "---|" * len(heads)]
        blocks = [t.rows] + ([t.reference] if t.reference else [])
        for i, rows in enumerate(blocks):
            if i:
                out.append("| " + " | ".join([f"**{PAPER_SOURCE}**"] + [""] * (len(heads) - 1)) + " |")
            for r in rows:
                cells = []
                for c in t.columns:
                    cell = r.cells[c.id]
                    d = delta_text(cell)
                    cells.append(value_text(cell) + _partial(cell, r) + (f" {d}{MD_MARK[cell.mark]}" if d else ""))
                out.append("| " + " | ".join([_md_escape(_row_label(r, "†")), trials_text(r)] + cells) + " |")
        if t.notes:
            out += ["", "Notes:"] + [f"- {_md_escape(n)}" for n in t.notes]
        out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------- CSV
CSV_COLUMNS = ["table", "benchmark", "protocol_hash", "synthetic", "source", "init", "init_kind", "row_protocol_hash",
               "pretrain_run",
               "pretrain_epoch", "n_trials", "trials", "missing_trials", "metric", "header", "mean", "std", "n",
               "delta", "mark", "baseline", "unverified"]


def tables_frame(tables: list[Table]) -> pd.DataFrame:
    """Long form: one line per (table, row, metric)."""
    lines = []
    for t in tables:
        for r in t.rows + t.reference:
            for c in t.columns:
                cell = r.cells[c.id]
                lines.append({
                    "table": t.table_id, "benchmark": t.benchmark, "protocol_hash": t.protocol_hash,
                    "synthetic": t.synthetic, "source": r.source, "init": r.label, "init_kind": r.kind,
                    "row_protocol_hash": r.protocol_hash,
                    "pretrain_run": r.pretrain_run, "pretrain_epoch": r.pretrain_epoch,
                    "n_trials": r.n if r.source != PAPER_SOURCE else None,
                    "trials": " ".join(map(str, r.trials)), "missing_trials": " ".join(map(str, r.missing_trials)),
                    "metric": c.key, "header": c.header, "mean": cell.mean, "std": cell.std,
                    "n": cell.n if r.source != PAPER_SOURCE else None, "delta": cell.delta, "mark": cell.mark,
                    "baseline": t.baseline if r.source != PAPER_SOURCE else None,
                    "unverified": cell.unverified})
    frame = pd.DataFrame(lines, columns=CSV_COLUMNS)
    return frame.astype({"n_trials": "Int64", "n": "Int64", "pretrain_epoch": "Int64"})


def render_csv(tables: list[Table]) -> str:
    return tables_frame(tables).to_csv(index=False)


# ----------------------------------------------------------------------------------------------- LaTeX
_TEX_CHARS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
              "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
              "—": "---", "–": "--", "±": r"$\pm$", "≥": r"$\geq$", "Δ": r"$\Delta$", "†": r"$^\dagger$",
              "▲": r"$\uparrow$", "▼": r"$\downarrow$"}


def tex_escape(text: str) -> str:
    """Escape LaTeX specials; other non-ASCII characters become '?' (pdflatex may not know them)."""
    return "".join(_TEX_CHARS.get(ch, ch if ord(ch) < 128 else "?") for ch in text)


def _tex_cell(cell: Cell, row: Row) -> str:
    text = tex_escape(value_text(cell)) + tex_escape(_partial(cell, row))
    d = delta_text(cell)
    if d:
        d = tex_escape(d)
        text += " " + (d if cell.mark == 0 else rf"\textcolor{{{'deltaup' if cell.mark > 0 else 'deltadown'}}}{{{d}}}")
    return text


def render_latex_table(t: Table) -> str:
    ncol = 2 + len(t.columns)
    lines = [r"\begin{table}[ht]", r"\centering", r"\small",
             rf"\caption{{{tex_escape(t.title)}. {tex_escape(_caption(t))}.}}",
             r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
             r"\begin{tabular}{l" + "r" * (ncol - 1) + "}", r"\hline",
             " & ".join(["initialisation", "trials"] + [tex_escape(c.header) for c in t.columns]) + r" \\", r"\hline"]
    for i, rows in enumerate([t.rows] + ([t.reference] if t.reference else [])):
        if i:
            lines += [r"\hline", rf"\multicolumn{{{ncol}}}{{l}}{{\textit{{{PAPER_SOURCE}}}}} \\"]
        for r in rows:
            cells = [tex_escape(_row_label(r, "†")), trials_text(r)] + [_tex_cell(r.cells[c.id], r) for c in t.columns]
            lines.append(" & ".join(cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}}"]
    if t.notes:
        lines += [r"\par\smallskip\raggedright\footnotesize"]
        lines += [tex_escape(n) + r"\par" for n in t.notes]
    lines.append(r"\end{table}")
    return "\n".join(lines)


def render_latex(tables: list[Table]) -> str:
    """A standalone document (packages: color, graphicx, both in any LaTeX); copy the table
    environments into a paper as they are."""
    head = [r"% Generated by `python -m mocobench tables` from the result records; do not edit, regenerate.",
            r"\documentclass{article}", r"\usepackage{color}", r"\usepackage{graphicx}",
            r"\definecolor{deltaup}{rgb}{0.0,0.55,0.0}", r"\definecolor{deltadown}{rgb}{0.8,0.0,0.0}",
            r"\begin{document}", r"\section*{Transfer results}", tex_escape(STAT_NOTE) + "."]
    body = [render_latex_table(t) for t in tables]
    return "\n".join(head + body + [r"\end{document}", ""])


# ----------------------------------------------------------------------------------------------- HTML
def _html_cell(cell: Cell, row: Row) -> str:
    attrs = "" if cell.mean is None else f' data-mean="{cell.mean!r}"'
    if cell.std is not None:
        attrs += f' data-std="{cell.std!r}"'
    if cell.delta is not None:
        attrs += f' data-delta="{cell.delta!r}"'
    text = html.escape(value_text(cell) + _partial(cell, row))
    d = delta_text(cell)
    if d:
        cls = {1: "up", -1: "down", 0: "flat"}[cell.mark]
        text += f' <span class="delta {cls}">{html.escape(d)}</span>'
    return f"<td{attrs}>{text}</td>"


def render_html(tables: list[Table]) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>Transfer results</title>',
           "<style>body{font-family:sans-serif} table{border-collapse:collapse;margin:1em 0}"
           " td,th{border:1px solid #bbb;padding:2px 8px;text-align:right} td:first-child{text-align:left}"
           " .up{color:#008c00;font-weight:bold} .down{color:#cc0000;font-weight:bold}"
           " tr.paper td{font-style:italic;background:#f4f4f4} tr.section th{text-align:left}</style>",
           "</head><body>", "<h1>Transfer results</h1>", f"<p>{html.escape(STAT_NOTE)}.</p>"]
    for t in tables:
        heads = ["initialisation", "trials"] + [c.header for c in t.columns]
        out += [f'<table id="{html.escape(t.table_id)}" data-benchmark="{html.escape(t.benchmark)}" '
                f'data-protocol="{t.protocol_hash}">',
                f"<caption>{html.escape(t.title)}<br><small>{html.escape(_caption(t))}</small></caption>",
                "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in heads) + "</tr></thead>", "<tbody>"]
        for i, rows in enumerate([t.rows] + ([t.reference] if t.reference else [])):
            if i:
                out.append(f'<tr class="section"><th colspan="{len(heads)}">{PAPER_SOURCE}</th></tr>')
            for r in rows:
                cls = "paper" if r.source == PAPER_SOURCE else "ours"
                out.append(f'<tr class="{cls}"><td>{html.escape(_row_label(r, "†"))}</td><td>{trials_text(r)}</td>'
                           + "".join(_html_cell(r.cells[c.id], r) for c in t.columns) + "</tr>")
        out.append("</tbody></table>")
        if t.notes:
            out.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in t.notes) + "</ul>")
    out += ["</body></html>", ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------------------------- writing
RENDERERS = {"md": render_markdown, "csv": render_csv, "tex": render_latex, "html": render_html}


def write_tables(tables: list[Table], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write every format into out_dir; returns {format: path}."""
    paths = {}
    for fmt, render in RENDERERS.items():
        paths[fmt] = Path(out_dir) / FILE_NAMES[fmt]
        write_text(paths[fmt], render(tables))
    return paths


# ================================================================================================ the card
CARD_FILE_NAMES = {"md": "card.md", "csv": "card.csv", "html": "card.html", "png": "card.png"}
CARD_STAT_NOTE = (f"Each cell: mean ± sample std over n trials; Δ: difference to the supervised row of the same "
                  f"benchmark and protocol, ▲ / ▼ where {TEST_NAME} finds it beyond the trials' noise (needs n ≥ 2 "
                  f"on both rows); unmarked Δ: inside the noise or not testable.")


def card_header(column: Column) -> str:
    """A card column's header; ‡: not counted in the tally (the card's notes say why)."""
    return column.header + (" ‡" if column.flag else "")


def card_cell_text(cell: Cell) -> str:
    if cell.mean is None:
        return MISSING
    text = value_text(cell)
    if cell.n and cell.level is None:
        text += f" (n={cell.n})"
    if cell.delta is not None:
        text += f", Δ {cell.delta:+.1f}{MD_MARK[cell.verdict]}"
    return text


def card_markdown(card: Card, title: str = "Report card") -> str:
    heads = ["initialisation"] + [card_header(c) for c in card.columns]
    out = [f"# {title}", "", CARD_STAT_NOTE, "", "| " + " | ".join(map(_md_escape, heads)) + " |",
           "|" + "---|" * len(heads)]
    for i, rows in enumerate([card.rows, card.paper]):
        if i and rows:
            out.append("| " + " | ".join([f"**{PAPER_SOURCE}**"] + [""] * len(card.columns)) + " |")
        for r in rows:
            label = r.label if r.source == OURS else f"{r.label} — {PAPER_SOURCE}"
            out.append("| " + " | ".join([_md_escape(label)] + [_md_escape(card_cell_text(r.cell(c)))
                                                                for c in card.columns]) + " |")
    out += ["", "**Summary**", ""] + [f"- {_md_escape(s)}" for s in card.summary() or ["no rows yet"]]
    if card.notes:
        out += ["", "Notes:"] + [f"- {_md_escape(n)}" for n in card.notes]
    return "\n".join(out) + "\n"


CARD_CSV_COLUMNS = ["source", "init", "init_kind", "benchmark", "metric", "header", "mean", "std", "n", "delta",
                    "se", "df", "p", "ci95", "verdict", "level", "reference_source"]


def card_frame(card: Card) -> pd.DataFrame:
    lines = []
    for r in card.rows + card.paper:
        for c in card.columns:
            cell = r.cell(c)
            t = cell.test
            lines.append({"source": r.source, "init": r.label, "init_kind": r.kind, "benchmark": c.benchmark,
                          "metric": c.key, "header": card_header(c), "mean": cell.mean, "std": cell.std,
                          "n": cell.n if cell.mean is not None else None, "delta": cell.delta,
                          "se": t.se if t else None, "df": t.df if t else None, "p": t.p if t else None,
                          "ci95": t.ci if t else None, "verdict": cell.verdict, "level": cell.level,
                          "reference_source": cell.source})
    return pd.DataFrame(lines, columns=CARD_CSV_COLUMNS).astype({"n": "Int64"})


def card_csv(card: Card) -> str:
    return card_frame(card).to_csv(index=False)


def _card_html_cell(cell: Cell) -> str:
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
    return f'<td class="{cls}"{attrs}>{html.escape(card_cell_text(cell))}</td>'


CARD_STYLE = ("<style>body{font-family:sans-serif;margin:1.5em} table{border-collapse:collapse;margin:1em 0}"
              " td,th{border:1px solid #bbb;padding:3px 8px;text-align:right} td:first-child{text-align:left}"
              " td.better{background:#e3f5e3} td.worse{background:#f8e1e1} tr.paper td{font-style:italic;"
              "background:#f4f4f4} tr.section th{text-align:left} img{max-width:100%}</style>")


def card_html(card: Card, png: bytes, title: str = "Report card") -> str:
    """One page, nothing outside it: inline style, the figure as a data: URI."""
    heads = ["initialisation"] + [card_header(c) for c in card.columns]
    out = ["<!DOCTYPE html>", f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
           CARD_STYLE, "</head><body>", f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(CARD_STAT_NOTE)}</p>",
           '<table id="card"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in heads) + "</tr></thead>"
           "<tbody>"]
    for i, rows in enumerate([card.rows, card.paper]):
        if i and rows:
            out.append(f'<tr class="section"><th colspan="{len(heads)}">{PAPER_SOURCE}</th></tr>')
        for r in rows:
            cls = "paper" if r.source == PAPER_SOURCE else "ours"
            out.append(f'<tr class="{cls}" data-kind="{r.kind}"><td>{html.escape(r.label)}</td>'
                       + "".join(_card_html_cell(r.cell(c)) for c in card.columns) + "</tr>")
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
    png = figure_png(delta_figure(card))
    paths = {k: Path(out_dir) / v for k, v in CARD_FILE_NAMES.items()}
    write_text(paths["md"], card_markdown(card, title))
    write_text(paths["csv"], card_csv(card))
    write_text(paths["html"], card_html(card, png, title))
    with atomic_write(paths["png"], overwrite=True) as f:
        f.write(png)
    return paths
