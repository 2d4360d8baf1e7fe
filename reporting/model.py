"""The reporting model: one column / cell / row / table shape for the per-benchmark tables and the report card.

    Column  a metric of a benchmark, e.g. ("bbox/AP50", "AP50"); on the card it names its benchmark too
    Cell    mean ± sample std over n trials, Δ to the supervised row, and optionally Welch's test of that Δ;
            for the paper's rows the evidence level and source of the number
    Row     one initialisation (ours: its trials; or the paper's reported numbers), cells by column id
    Table   the rows of one benchmark and protocol (reporting/aggregate.py builds it)
    Card    columns of several benchmarks, the rows across them (reporting/card.py builds it)

Two marks, one cell: `mark` is the paper's convention for the tables (|Δ| ≥ 0.5 point), `verdict` the card's
(Welch's t-test finds Δ beyond the trials' noise). Rendering: reporting/render.py; figures: reporting/plots.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mocobench.reporting.significance import TEST_NAME, Welch

PAPER_SOURCE = "reported (paper)"
OURS = "ours"
MARK_THRESHOLD = 0.5  # the paper marks gaps of at least 0.5 point
KIND_ORDER = {"random": 0, "supervised": 1, "moco": 2, "other": 3}


@dataclass(frozen=True)
class Column:
    key: str                      # flattened metric key, e.g. "bbox/AP50"
    header: str                   # printed header, e.g. "AP50" (card: "VOC07+12 det AP50")
    benchmark: str | None = None  # the card's columns span benchmarks; a table's columns are its own
    flag: str | None = None       # the card: why this column is not counted (a copy of another, or degenerate)

    @property
    def id(self) -> str:
        """The key of this column's cells in a row: the metric in a table, benchmark:metric on the card."""
        return self.key if self.benchmark is None else f"{self.benchmark}:{self.key}"


@dataclass
class Cell:
    mean: float | None = None
    std: float | None = None      # sample std (ddof=1); None when fewer than 2 values
    n: int = 0                    # trials that have this metric
    delta: float | None = None    # mean - mean of the supervised row of the same table
    test: Welch | None = None     # Welch's test of delta; None: a side with < 2 trials, or no supervised row
    level: str | None = None      # reported numbers: evidence level A | B | U (reference.yaml)
    source: str | None = None     # reported numbers: where the number comes from

    @property
    def unverified(self) -> bool:
        """A reported number that two independent sources do not confirm (shown with a dagger)."""
        return self.level is not None and self.level != "A"

    @property
    def mark(self) -> int:
        """The tables: +1 / -1 where |delta| >= MARK_THRESHOLD (green / red in the paper), else 0."""
        if self.delta is None or abs(self.delta) < MARK_THRESHOLD:
            return 0
        return 1 if self.delta > 0 else -1

    @property
    def verdict(self) -> int:
        """The card: +1 / -1 better / worse than supervised beyond the noise; 0: inside it or not tested."""
        if self.test is None or not self.test.significant or not self.delta:
            return 0
        return 1 if self.delta > 0 else -1


@dataclass
class Row:
    label: str
    kind: str
    source: str = OURS  # OURS or PAPER_SOURCE
    cells: dict[str, Cell] = field(default_factory=dict)  # column id -> cell
    trials: list[int] = field(default_factory=list)
    missing_trials: list[int] = field(default_factory=list)
    pretrain_run: str | None = None
    pretrain_epoch: int | None = None
    protocol_hash: str | None = None  # the records' full protocol hash (ours)
    unverified: bool = False  # reported numbers not yet checked against the paper

    @property
    def n(self) -> int:
        return len(self.trials)

    def cell(self, column: Column) -> Cell:
        return self.cells.get(column.id) or Cell()


@dataclass
class Table:
    table_id: str
    benchmark: str
    title: str
    protocol_hash: str        # hash of the shared protocol (the records' protocol without INIT_FIELDS)
    protocol: dict[str, Any]  # that shared protocol
    synthetic: bool
    columns: list[Column]
    rows: list[Row]
    reference: list[Row] = field(default_factory=list)
    baseline: str | None = None  # label of the supervised row the deltas are taken against
    notes: list[str] = field(default_factory=list)


def tally(row: Row, columns: list[Column]) -> tuple[int, int, int, int]:
    """(better, worse, compared, missing) over the counted columns (flagged ones left out): columns beyond the
    noise either way, columns with a delta, and columns where this row has no value."""
    cells = [row.cell(c) for c in columns if c.flag is None]
    compared = [c for c in cells if c.delta is not None]
    return (sum(c.verdict > 0 for c in compared), sum(c.verdict < 0 for c in compared), len(compared),
            sum(c.mean is None for c in cells))


@dataclass
class Card:
    columns: list[Column]
    rows: list[Row]                        # ours
    paper: list[Row]                       # the paper's, where comparable
    baselines: dict[str, str]              # benchmark -> label of its supervised row
    notes: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        """One line per row: "better than supervised on k of n tasks" (flagged columns not counted)."""
        out = []
        counted = [c for c in self.columns if c.flag is None]
        for row in self.rows:
            better, worse, compared, missing = tally(row, self.columns)
            if not compared:
                if row.label not in self.baselines.values():  # the supervised rows themselves say nothing
                    out.append(f"{row.label}: no task to compare with a supervised row")
                continue
            extra = f", worse on {worse}" if worse else ""
            extra += f"; {missing} of {len(counted)} task column(s) missing" if missing else ""
            out.append(f"{row.label}: better than supervised on {better} of {compared} tasks{extra} "
                       f"(a task: one column, task x headline metric; {TEST_NAME})")
        return out
