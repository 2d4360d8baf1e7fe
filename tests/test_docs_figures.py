"""Figures from one source: the numbers README.md and docs/ quote from the built-in suite equal the card they
quote, the card as recorded in benchmarks/perf/results/suite_builtin.md (its Markdown as written; the run's
records were not committed). The card is read back into the reporting model, so the tally the README states
under the ‡ rule is the card module's own answer."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from mocobench.reporting.card import flag_columns
from mocobench.reporting.model import Card, Cell, Column, Row, tally
from mocobench.reporting.significance import Welch

ROOT = Path(__file__).resolve().parent.parent
CARD_RECORD = ROOT / "benchmarks" / "perf" / "results" / "suite_builtin.md"
SUP, MOCO, RANDOM = "supervised_demo-ep7", "moco_v2_demo-ep10", "random"
CELL = re.compile(r"^(?P<mean>-?[\d.]+)(?: ± (?P<std>[\d.]+))? \(n=(?P<n>\d+)\)(?:, Δ (?P<delta>[+-][\d.]+)"
                  r"(?P<mark> [▲▼])?)?$")
VALUE = r"([\d.]+ ± [\d.]+)"  # a quoted card value, mean ± std as the card shows it
# (file, pattern with one group per quoted value (@), the (row, column) of the card each group quotes)
QUOTES = [(path, pattern.replace("@", VALUE), cells) for path, pattern, cells in [
    ("README.md", r"supervised R-18 @, the MoCo demo @, random init @",
     [(SUP, "VOC07+12 det AP50"), (MOCO, "VOC07+12 det AP50"), (RANDOM, "VOC07+12 det AP50")]),
    ("docs/results.md", r"VOC07\+12 box AP50 @ against @ from random init and @ supervised",
     [(MOCO, "VOC07+12 det AP50"), (RANDOM, "VOC07+12 det AP50"), (SUP, "VOC07+12 det AP50")]),
    ("docs/results.md", r"C4 1x APbb @ against @ random, @ supervised",
     [(MOCO, "COCO C4 1x APbb"), (RANDOM, "COCO C4 1x APbb"), (SUP, "COCO C4 1x APbb")]),
    ("docs/notes/demo-signal.md", r"VOC07\+12 box AP50 @ against @, supervised @",
     [(MOCO, "VOC07+12 det AP50"), (RANDOM, "VOC07+12 det AP50"), (SUP, "VOC07+12 det AP50")]),
]]


def _card_table(text: str) -> tuple[list[str], dict[str, list[str]]]:
    """The first card table of a Markdown text: its headers, and {row label: cell texts}."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| initialisation |"))
    heads = [c.strip() for c in lines[start].strip("|").split("|")][1:]
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return heads, rows


def _flat(path: str) -> str:
    return " ".join((ROOT / path).read_text().split())


@pytest.fixture(scope="module")
def recorded():
    return _card_table(CARD_RECORD.read_text())


def test_the_readme_card_is_the_recorded_card(recorded):
    assert _card_table((ROOT / "README.md").read_text()) == recorded


@pytest.mark.parametrize("path, pattern, cells", QUOTES, ids=[f"{q[0]}:{q[2][0][1]}" for q in QUOTES])
def test_quoted_figures_equal_the_card(recorded, path, pattern, cells):
    heads, rows = recorded
    found = re.search(pattern, _flat(path))
    assert found, f"{path}: the quoted figures ({pattern}) are gone or reworded; quote the card again"
    for quoted, (row, column) in zip(found.groups(), cells):
        shown = rows[row][heads.index(column)].split(" (n=")[0]
        assert quoted == shown, f"{path} quotes {quoted} for {row} / {column}; the card says {shown}"


def _read_back(heads: list[str], rows: dict[str, list[str]]) -> Card:
    """The recorded card in the reporting model. Its text keeps each verdict (▲ / ▼), not the test's numbers, so
    a test stands in with only the verdict filled in."""
    columns = [Column(h.split()[-1], h, " ".join(h.split()[:-1])) for h in heads]
    card_rows = []
    for label, texts in rows.items():
        row = Row(label, {SUP: "supervised", MOCO: "moco"}.get(label, "random"))
        for col, text in zip(columns, texts):
            m = CELL.match(text)
            assert m, f"{label} / {col.header}: {text!r} is not a card cell"
            delta = None if m["delta"] is None else float(m["delta"])
            test = None if delta is None else Welch(delta, 0.0, 1.0, 0.0, 0.0 if m["mark"] else 1.0, 0.0,
                                                    bool(m["mark"]))
            row.cells[col.id] = Cell(float(m["mean"]), None if m["std"] is None else float(m["std"]), int(m["n"]),
                                     delta, test)
        card_rows.append(row)
    return Card(columns, card_rows, [], {h: SUP for h in heads})


def test_the_tally_the_readme_states_is_the_cards_rule_applied_to_the_recorded_card(recorded):
    card = _read_back(*recorded)
    rows = {r.label: r for r in card.rows}
    # the parser is right: without flags the read-back card says what the recorded card said
    text = CARD_RECORD.read_text()
    for label in (RANDOM, MOCO):
        better, worse, compared, _ = tally(rows[label], card.columns)
        assert f"{label}: better than supervised on {better} of {compared} tasks, worse on {worse}" in text
    flag_columns(card)
    assert [c.header for c in card.columns if c.flag] == [
        "COCO FPN 2x APbb", "COCO FPN 2x APmk", "COCO C4 2x APbb", "COCO C4 2x APmk", "Cityscapes inst AP (mask)",
        "VOC sem seg mIoU"]
    readme = _flat("README.md")
    for label in (RANDOM, MOCO):
        better, worse, compared, _ = tally(rows[label], card.columns)
        assert f"{label}: worse on {worse} of {compared} tasks" in readme
        assert better == 0 and "better on none" in readme
