"""What every command prints before it does anything: not fvcore's torch.jit FutureWarning."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Without PYTHONWARNINGS: importing mocobench (as other tests in this process do) puts the filter there, and every
# child would inherit it; each command below must silence the warning by itself.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}


@pytest.mark.parametrize("module", ["mocobench", "mocobench.pretrain", "mocobench.detection.convert"])
def test_commands_do_not_print_the_torch_jit_future_warning(module):
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=300,
                          env=CLEAN_ENV)
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout.lower()
    assert "torch.jit.script" not in proc.stderr and "FutureWarning" not in proc.stderr


def test_the_warning_is_still_there_without_the_filter():
    """The test above has teeth: importing detectron2's model code without our package prints the warning."""
    code = "import detectron2.modeling"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=CLEAN_ENV)
    assert "torch.jit.script" in proc.stderr


def test_spawned_children_do_not_print_it_either():
    """A process spawned by one of ours that imports detectron2 before mocobench (Detectron2's Cityscapes loader
    opens such a pool inside a trial worker) is quiet too; without the package it warns (teeth above)."""
    code = ("import importlib, multiprocessing as mp, mocobench\n"
            "p = mp.get_context('spawn').Process(target=importlib.import_module, args=('detectron2.modeling',))\n"
            "p.start(); p.join(); assert p.exitcode == 0")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=CLEAN_ENV)
    assert proc.returncode == 0, proc.stderr
    assert "torch.jit.script" not in proc.stderr and "FutureWarning" not in proc.stderr
