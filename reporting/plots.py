"""Figures from tables and pretraining logs (matplotlib, no pyplot state: safe without a display).

- bars: one group per metric, one bar per initialisation with its sample std as error bar; the paper's
  reported rows as hatched bars after ours.
- transfer vs pretraining epoch: when >= 2 epochs of one pretraining run were fine-tuned under one
  protocol; supervised and random rows of the same table as horizontal reference lines.
- pretraining curves: loss per step and kNN top-1 per epoch from a run's log.jsonl.
- the report card's figure: Δ vs supervised per task column, the 95% confidence interval of Δ (Welch) as
  error bars (an interval that excludes 0 = a counted difference).
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mocobench.common.atomic import atomic_write
from mocobench.reporting.model import PAPER_SOURCE, Card, Table


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Save as PNG, replacing an older plot atomically."""
    path = Path(path)
    with atomic_write(path, overwrite=True) as f:
        fig.savefig(f, dpi=dpi, format="png", bbox_inches="tight")
    return path


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (the card inlines them in its HTML page)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def bar_figure(table: Table) -> Figure:
    """Grouped bars; each bar container is labelled with its row (reported rows: '<label> (reported)')."""
    rows = table.rows + table.reference
    x = np.arange(len(table.columns))
    width = 0.8 / max(len(rows), 1)
    fig = Figure(figsize=(max(5.0, 1.2 + len(table.columns) * (0.5 + 0.25 * len(rows))), 4.0))
    ax = fig.add_subplot()
    for i, row in enumerate(rows):
        cells = [row.cells[c.id] for c in table.columns]
        heights = [np.nan if c.mean is None else c.mean for c in cells]
        errors = [np.nan if c.std is None else c.std for c in cells]
        paper = row.source == PAPER_SOURCE
        label = (f"{row.label} (reported{', unverified' if row.unverified else ''})" if paper
                 else f"{row.label} (n={row.n})")
        has_err = any(c.std is not None for c in cells)
        ax.bar(x - 0.4 + width * (i + 0.5), heights, width, yerr=errors if has_err else None, capsize=3, label=label,
               hatch="//" if paper else None, alpha=0.45 if paper else 1.0, edgecolor="black", linewidth=0.5)
    ax.set_xticks(x, [c.header for c in table.columns])
    ax.set_ylabel("score (mean ± sample std)")
    ax.set_title(table.title, fontsize=9, wrap=True)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return fig


def epoch_series(table: Table) -> dict[str, list]:
    """{pretraining run: rows of that run ordered by epoch}, only for runs with >= 2 distinct epochs."""
    runs: dict[str, list] = {}
    for row in table.rows:
        if row.pretrain_run and row.pretrain_epoch is not None:
            runs.setdefault(row.pretrain_run, []).append(row)
    return {run: sorted(rows, key=lambda r: r.pretrain_epoch) for run, rows in runs.items()
            if len({r.pretrain_epoch for r in rows}) >= 2}


def epoch_figure(table: Table) -> Figure | None:
    series = epoch_series(table)
    if not series:
        return None
    cols = table.columns
    fig = Figure(figsize=(3.2 * len(cols) + 1.5, 3.2))
    for j, col in enumerate(cols):
        ax = fig.add_subplot(1, len(cols), j + 1)
        for run, rows in series.items():
            pts = [(r.pretrain_epoch, r.cells[col.id]) for r in rows if r.cells[col.id].mean is not None]
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1].mean for p in pts], capsize=3, marker="o",
                            yerr=[0.0 if p[1].std is None else p[1].std for p in pts], label=Path(run).name)
        for row, style in ((r, "--" if r.kind == "supervised" else ":") for r in table.rows
                           if r.kind in ("supervised", "random")):
            if row.cells[col.id].mean is not None:
                ax.axhline(row.cells[col.id].mean, linestyle=style, color="gray", label=row.label)
        ax.set_xlabel("pretraining epoch")
        ax.set_title(col.header)
        ax.grid(alpha=0.3)
    fig.axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(f"transfer vs pretraining epoch: {table.title}", fontsize=9, y=1.03)
    return fig


def pretrain_figure(log: pd.DataFrame, name: str) -> Figure:
    """Loss per step (left; per-window "step" lines when the log has them, epoch means as dots) and
    kNN top-1 per finished epoch (right, when the log has it)."""
    knn = log.dropna(subset=["knn_top1"])
    fig = Figure(figsize=(10 if len(knn) else 5.5, 3.5))
    ax = fig.add_subplot(1, 2 if len(knn) else 1, 1)
    loss = log.dropna(subset=["loss"])
    steps, epochs = loss[loss["kind"] == "step"], loss[loss["kind"] == "epoch"]
    if len(steps) == 0:
        steps, epochs = loss[loss["kind"] != "epoch"], epochs
    ax.plot(steps["step"], steps["loss"], linewidth=0.8, label="loss")
    if len(epochs):
        ax.plot(epochs["step"], epochs["loss"], "o", markersize=3, label="epoch mean")
        ax.legend(fontsize=7)
    ax.set_xlabel("step")
    ax.set_ylabel("InfoNCE loss")
    ax.set_title(f"{name}: loss")
    ax.grid(alpha=0.3)
    if len(knn):
        ax2 = fig.add_subplot(1, 2, 2)
        ax2.plot(knn["finished_epochs"], knn["knn_top1"], marker="o")
        ax2.set_xlabel("pretraining epochs finished")
        ax2.set_ylabel("kNN top-1 (%)")
        ax2.set_title(f"{name}: kNN top-1")
        ax2.grid(alpha=0.3)
    return fig


def delta_figure(card: Card) -> Figure:
    """The card's figure: Δ vs supervised per task column, one marker series per non-supervised row of ours,
    error bars: the 95% confidence interval of Δ (Welch); columns without a test get the point alone."""
    rows = [r for r in card.rows if any(r.cell(c).delta is not None for c in card.columns)]
    x = np.arange(len(card.columns))
    fig = Figure(figsize=(max(6.0, 1.0 + 0.9 * len(card.columns)), 4.2))
    ax = fig.add_subplot()
    ax.axhline(0.0, color="gray", linewidth=0.8)
    width = 0.6 / max(len(rows), 1)
    for i, r in enumerate(rows):
        cells = [r.cell(c) for c in card.columns]
        ys = [np.nan if c.delta is None else c.delta for c in cells]
        errs = [np.nan if c.test is None else c.test.ci for c in cells]
        ax.errorbar(x - 0.3 + width * (i + 0.5), ys, yerr=errs, fmt="o", capsize=3, label=r.label)
    ax.set_xticks(x, [c.header + (" ‡" if c.flag else "") for c in card.columns], rotation=30, ha="right",
                  fontsize=8)
    ax.set_ylabel("Δ vs supervised (points), 95% CI")
    ax.set_title("Difference to the supervised initialisation per task", fontsize=9)
    if rows:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    return fig
