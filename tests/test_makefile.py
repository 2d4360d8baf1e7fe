"""The make targets take the results folder once (RESULTS=DIR) for the run and for the tables they print."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("target", ["voc-det", "transfer DATASET=widgets", "suite",
                                    "coco-vitdet VIT_WEIGHTS=a.pth"])
def test_results_dir_reaches_the_run_and_the_tables(target, tmp_path):
    out = tmp_path / "res"
    proc = subprocess.run(["make", "-n", *target.split(), f"RESULTS={out}", f"SUP_WEIGHTS={tmp_path / 'sup'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.replace("\\\n", " ")
    runs = [line for line in text.splitlines() if "-m mocobench run" in line]
    assert runs and all(f"--results {out}" in line for line in runs), runs
    if target != "suite":  # the suite writes its report card from the same folder itself
        tables = [line for line in text.splitlines() if "-m mocobench tables" in line]
        assert tables and all(f"--results {out}" in line for line in tables), tables


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("target", ["voc-det", "transfer DATASET=widgets", "suite"])
def test_sup_weights_are_declared_the_supervised_baseline(target, tmp_path):
    """SUP_WEIGHTS reaches the run as --supervised (declared), never as a plain --weights whose kind is guessed."""
    sup = tmp_path / "R-50.pkl"
    proc = subprocess.run(["make", "-n", *target.split(), f"SUP_WEIGHTS={sup}"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    runs = [line for line in proc.stdout.replace("\\\n", " ").splitlines() if "-m mocobench run" in line]
    assert runs and all(f"--supervised {sup}" in line and f"--weights {sup}" not in line for line in runs), runs
