"""`python -m mocobench tables` end to end on hand-made records in a temporary results folder."""
from __future__ import annotations

import hashlib
import json

import matplotlib.image
import pandas as pd

from mocobench.__main__ import main
from mocobench.records import find_records, write_record
from tests.helpers.records import det, make_record, write_voc


def _snapshot(results):
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (results / "records").rglob("*") if p.is_file()}


def test_no_records_says_how_to_make_some(tmp_path, capsys):
    assert main(["tables", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "No result records" in out and "make voc-det" in out
    assert not (tmp_path / "tables").exists()


def test_writes_every_format_and_plots_and_never_touches_records(tmp_path, capsys):
    run = tmp_path / "pretrain" / "run1"
    run.mkdir(parents=True)
    (run / "log.jsonl").write_text("".join(json.dumps({"epoch": s // 5, "step": s, "loss": 10 - s / 10, "lr": 0.03})
                                           + "\n" for s in range(20)))
    write_voc(tmp_path)
    for epoch, ap in ((100, 50.0), (200, 55.0)):
        write_record(make_record("voc0712-det-c4", f"run1-ep{epoch}", "moco", 0, det(80, ap, 60),
                                 pretrain={"run": str(run), "epoch": epoch}), tmp_path)
    before = _snapshot(tmp_path)
    for _ in range(2):  # a second run replaces the derived files
        assert main(["tables", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert _snapshot(tmp_path) == before and len(find_records(tmp_path)) == len(before)
    tables = tmp_path / "tables"
    assert sorted(p.name for p in tables.iterdir()) == ["tables.csv", "tables.html", "tables.md", "tables.tex"]
    assert (tables / "tables.md").read_text().strip() in out  # the Markdown is also printed
    frame = pd.read_csv(tables / "tables.csv")
    assert set(frame["init"]) >= {"random", "supervised-tv", "moco-v2-200ep", "run1-ep100", "run1-ep200"}
    for name in ("voc0712-det-c4_bars.png", "voc0712-det-c4_vs_epoch.png"):
        image = matplotlib.image.imread(tmp_path / "plots" / name)
        assert image.ndim == 3 and image.shape[0] > 100
    assert len(list((tmp_path / "plots").glob("pretrain_*run1.png"))) == 1  # found from the records


def test_a_tampered_record_is_an_error_naming_the_file(tmp_path, capsys):
    [path, *_] = write_voc(tmp_path)
    record = json.loads(path.read_text())
    record["protocol"]["max_iter"] = 100  # edited by hand, hash left as it was
    path.write_text(json.dumps(record))
    assert main(["tables", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "protocol_hash does not match" in err
    assert not (tmp_path / "tables").exists()


def test_bad_arguments_are_refused_before_writing(tmp_path, capsys):
    write_voc(tmp_path)
    assert main(["tables", "--results", str(tmp_path), "--pretrain-runs", str(tmp_path / "nope")]) == 2
    assert "no log.jsonl" in capsys.readouterr().err
    assert main(["tables", "--results", str(tmp_path), "--tables-dir", str(tmp_path / "records" / "t")]) == 2
    assert "inside" in capsys.readouterr().err
    assert not (tmp_path / "tables").exists() and not (tmp_path / "records" / "t").exists()


def test_two_undeclared_supervised_rows_exit_2_and_keep_the_tables_written_before(tmp_path, capsys):
    write_voc(tmp_path)
    assert main(["tables", "--results", str(tmp_path), "--no-plots", "--quiet"]) == 0
    written = {p.name: p.read_bytes() for p in (tmp_path / "tables").iterdir()}
    before = _snapshot(tmp_path)
    # another run into the same results folder: a second undeclared supervised row of the same table
    write_record(make_record("voc0712-det-c4", "sup-b", "supervised", 0, det(80.0, 52.0, 57.0), declared=False,
                             kind_reason="a 1000-way classifier stored with the backbone"), tmp_path)
    capsys.readouterr()
    assert main(["tables", "--results", str(tmp_path), "--no-plots"]) == 2
    out = capsys.readouterr()
    [line] = [x for x in out.err.splitlines() if not x.startswith("[reporting]")]  # one line beside the log
    assert line.startswith("error: voc0712-det-c4: 2 rows claim to be the supervised baseline")
    assert "'sup-b'" in line and "'supervised-tv'" in line and out.out == ""
    assert {p.name: p.read_bytes() for p in (tmp_path / "tables").iterdir()} == written  # nothing lost
    assert all(_snapshot(tmp_path)[p] == h for p, h in before.items())  # the records untouched
