"""Tables -> Markdown, CSV, LaTeX and HTML, and writing them (derived files, replaced atomically).

Every format shows the same thing: mean +- sample std (ddof=1) per metric, the trial count, the delta
against the supervised row in parentheses, marked where |delta| >= 0.5 (a sign in Markdown, green/red
in LaTeX and HTML), the paper's reported rows apart under their own heading, and the table's notes.
CSV is the long form (one line per row and metric) for further analysis with pandas.
"""
from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd

from mocobench.common.atomic import write_text
from mocobench.reporting.aggregate import MARK_THRESHOLD, PAPER_SOURCE, Cell, Row, Table

MISSING = "—"
MD_MARK = {1: " ▲", -1: " ▼", 0: ""}
STAT_NOTE = (f"mean ± sample std (ddof=1) over n trials; no std when n = 1. (Δ): difference to the supervised "
             f"row of the same protocol; marked where |Δ| ≥ {MARK_THRESHOLD}")
FILE_NAMES = {"md": "tables.md", "csv": "tables.csv", "tex": "tables.tex", "html": "tables.html"}


def value_text(cell: Cell, pm: str = " ± ") -> str:
    if cell.mean is None:
        return MISSING
    std = f"{pm}{cell.std:.2f}" if cell.std is not None else ""
    return f"{cell.mean:.1f}{std}" + ("†" if cell.unverified else "")


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
                    cell = r.cells[c.key]
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
                cell = r.cells[c.key]
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
                    "unverified": r.unverified or cell.unverified})
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
            cells = [tex_escape(_row_label(r, "†")), trials_text(r)] + [_tex_cell(r.cells[c.key], r) for c in t.columns]
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
                           + "".join(_html_cell(r.cells[c.key], r) for c in t.columns) + "</tr>")
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
