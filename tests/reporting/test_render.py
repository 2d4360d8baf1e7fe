"""Each output format parsed back and compared with statistics computed here from the hand-made records."""
from __future__ import annotations

import io
import re
import shutil
import statistics
import subprocess
from html.parser import HTMLParser

import pandas as pd
import pytest

from mocobench.records import load_records
from mocobench.reporting import aggregate
from mocobench.reporting import render as formats
from tests.helpers.records import VOC_TRIALS, det, write_voc

ODD_LABEL = "moco_v2 & <x> 50%|#"  # LaTeX, HTML and Markdown specials in one row label
TRIALS = dict(VOC_TRIALS)
TRIALS[(ODD_LABEL, "other")] = [det(81.0, 52.0, 57.0), det(81.2, 52.4, 57.6)]


def expected_rows() -> dict[str, dict[str, tuple[float, float, int, float | None]]]:
    """{label: {metric: (mean, std, n, delta)}} computed straight from the trial values."""
    sup = {m: statistics.mean(t["bbox"][m] for t in TRIALS[("supervised-tv", "supervised")])
           for m in ("AP50", "AP", "AP75")}
    out = {}
    for (label, kind), trials in TRIALS.items():
        out[label] = {}
        for m in ("AP50", "AP", "AP75"):
            values = [t["bbox"][m] for t in trials]
            mean = statistics.mean(values)
            out[label][f"bbox/{m}"] = (mean, statistics.stdev(values), len(values),
                                       None if kind == "supervised" else mean - sup[m])
    return out


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    write_voc(results, trials=TRIALS)
    return aggregate.build_tables(load_records(results), reference=aggregate.load_reference())


def test_csv_parses_back_to_the_independent_statistics(tables):
    frame = pd.read_csv(io.StringIO(formats.render_csv(tables)))
    assert list(frame.columns) == formats.CSV_COLUMNS
    ours = frame[frame["source"] == aggregate.OURS]
    expected = expected_rows()
    assert len(ours) == sum(len(v) for v in expected.values())
    for _, line in ours.iterrows():
        mean, std, n, delta = expected[line["init"]][line["metric"]]
        assert line["mean"] == pytest.approx(mean, abs=1e-9) and line["std"] == pytest.approx(std, abs=1e-9)
        assert line["n"] == n
        assert pd.isna(line["delta"]) if delta is None else line["delta"] == pytest.approx(delta, abs=1e-9)
        assert line["mark"] == (0 if delta is None or abs(delta) < 0.5 else (1 if delta > 0 else -1))
        assert line["baseline"] == "supervised-tv"
    paper = frame[frame["source"] == aggregate.PAPER_SOURCE]
    ig = paper[(paper["init"] == "MoCo IG-1B") & (paper["metric"] == "bbox/AP50")].iloc[0]
    assert ig["mean"] == 82.2 and bool(ig["unverified"]) and pd.isna(ig["std"])


class _TableParser(HTMLParser):
    """Collects every <table> as a list of rows; a cell is (tag, attrs, text, span classes)."""

    def __init__(self):
        super().__init__()
        self.tables, self.notes, self._cell, self._in_li = [], [], None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append({"attrs": attrs, "rows": []})
        elif tag == "tr":
            self.tables[-1]["rows"].append({"class": attrs.get("class"), "cells": []})
        elif tag in ("td", "th"):
            self._cell = {"tag": tag, "attrs": attrs, "text": "", "spans": []}
        elif tag == "span" and self._cell is not None:
            self._cell["spans"].append(attrs.get("class", ""))
        elif tag == "li":
            self._in_li = True
            self.notes.append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1]["cells"].append(self._cell)
            self._cell = None
        elif tag == "li":
            self._in_li = False

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data
        elif self._in_li:
            self.notes[-1] += data


def test_html_parses_back_with_values_and_colours(tables):
    parser = _TableParser()
    parser.feed(formats.render_html(tables))
    [table] = parser.tables
    assert table["attrs"]["data-benchmark"] == "voc0712-det-c4"
    header = [c["text"] for c in table["rows"][0]["cells"]]
    assert header == ["initialisation", "trials", "AP50", "AP", "AP75"]
    expected = expected_rows()
    ours = [r for r in table["rows"] if r["class"] == "ours"]
    assert [r["cells"][0]["text"] for r in ours] == ["random", "supervised-tv", "moco-v2-200ep", ODD_LABEL]
    for row in ours:
        label, cells = row["cells"][0]["text"], row["cells"][2:]
        for cell, key in zip(cells, ("bbox/AP50", "bbox/AP", "bbox/AP75")):
            mean, std, n, delta = expected[label][key]
            assert float(cell["attrs"]["data-mean"]) == pytest.approx(mean, abs=1e-9)
            assert float(cell["attrs"]["data-std"]) == pytest.approx(std, abs=1e-9)
            assert cell["text"].startswith(f"{mean:.1f} ± {std:.2f}")
            if delta is None:
                assert cell["spans"] == [] and "data-delta" not in cell["attrs"]
            else:
                colour = "up" if delta >= 0.5 else "down" if delta <= -0.5 else "flat"
                assert cell["spans"] == [f"delta {colour}"], (label, key, delta)
                assert f"({delta:+.1f})" in cell["text"]
    # The reported rows come after a section heading, labelled as reported, unverified ones with a dagger.
    section = next(i for i, r in enumerate(table["rows"]) if r["class"] == "section")
    paper = [r for r in table["rows"][section + 1:]]
    assert all(r["class"] == "paper" and r["cells"][0]["text"].split("†")[0].endswith("reported (paper)")
               for r in paper)
    assert any(r["cells"][0]["text"] == "MoCo IG-1B — reported (paper)†" for r in paper)
    assert any("not verified against the paper" in n for n in parser.notes)


def _tex_environments_balanced(tex: str) -> None:
    stack = []
    for kind, name in re.findall(r"\\(begin|end)\{([^}]*)\}", tex):
        if kind == "begin":
            stack.append(name)
        else:
            assert stack and stack.pop() == name, f"\\end{{{name}}} closes the wrong environment"
    assert stack == []


def test_latex_is_structurally_valid_and_compiles_where_a_tex_engine_exists(tables, tmp_path):
    tex = formats.render_latex(tables)
    _tex_environments_balanced(tex)
    unescaped = re.sub(r"\\[{}]", "", tex)
    assert unescaped.count("{") == unescaped.count("}")
    body = tex[tex.index(r"\begin{tabular}"):tex.index(r"\end{tabular}")]
    spec = re.match(r"\\begin\{tabular\}\{([lrc]+)\}", body).group(1)
    rows = [line for line in body.splitlines() if line.endswith(r"\\") and r"\multicolumn" not in line]
    assert len(rows) == 1 + 4 + 6  # header, our 4 rows, the paper's 6
    for line in rows:
        assert len(re.findall(r"(?<!\\)&", line)) + 1 == len(spec), line
    odd = next(line for line in rows if line.startswith(r"moco\_"))
    assert odd.startswith(r"moco\_v2 \& <x> 50\%|\#")
    moco = next(line for line in rows if line.startswith("moco-v2-200ep"))
    assert moco.count(r"\textcolor{deltaup}") == 3  # all three deltas of MoCo >= +0.5: green
    random_row = next(line for line in rows if line.startswith("random &"))
    assert random_row.count(r"\textcolor{deltadown}") == 3
    assert r"\multicolumn{5}{l}{\textit{reported (paper)}}" in body
    # Compiling needs a TeX engine (texlive-latex-base); CI does not install one, a developer machine may.
    engine = shutil.which("pdflatex")
    if engine:
        (tmp_path / "t.tex").write_text(tex)
        proc = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout[-2000:]
        assert (tmp_path / "t.pdf").stat().st_size > 0


def test_markdown_rows_and_signs(tables):
    md = formats.render_markdown(tables)
    lines = [line for line in md.splitlines() if line.startswith("|")]
    assert all(len(re.split(r"(?<!\\)\|", line)) == 7 for line in lines)  # 5 columns between 6 pipes
    expected = expected_rows()
    mean, std, n, delta = expected["moco-v2-200ep"]["bbox/AP"]
    assert "| moco-v2-200ep | 3 | " in md and f"{mean:.1f} ± {std:.2f} ({delta:+.1f}) ▲" in md
    mean, std, n, delta = expected[ODD_LABEL]["bbox/AP50"]
    assert abs(delta) < 0.5 and f"{mean:.1f} ± {std:.2f} ({delta:+.1f}) |" in md  # no sign below 0.5
    assert "moco_v2 & <x> 50%\\|#" in md  # the pipe of the label is escaped
    assert "| random init — reported (paper) |  | 60.2 (-21.1) ▼ |" in md
