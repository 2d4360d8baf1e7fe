"""What every command prints before it does anything: not fvcore's torch.jit FutureWarning."""
from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["mocobench", "mocobench.pretrain", "mocobench.detection.convert"])
def test_commands_do_not_print_the_torch_jit_future_warning(module):
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout.lower()
    assert "torch.jit.script" not in proc.stderr and "FutureWarning" not in proc.stderr


def test_the_warning_is_still_there_without_the_filter():
    """The test above has teeth: importing detectron2's model code without our package prints the warning."""
    code = "import detectron2.modeling"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "torch.jit.script" in proc.stderr
