"""What every command prints before it does anything: not fvcore's torch.jit FutureWarning."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Without PYTHONWARNINGS: a command run in this process (as other tests do) puts the rule there, and every child
# would inherit it; each command below must silence the warning by itself.
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
    """A process spawned by a command of ours that imports detectron2 before mocobench (Detectron2's Cityscapes
    loader opens such a pool inside a trial worker) is quiet too: the policy every command applies where it starts
    reaches it through PYTHONWARNINGS; without the policy it warns (teeth above)."""
    code = ("import importlib, multiprocessing as mp\n"
            "from mocobench.common.warnings_policy import apply_command_policy\n"
            "apply_command_policy()\n"
            "p = mp.get_context('spawn').Process(target=importlib.import_module, args=('detectron2.modeling',))\n"
            "p.start(); p.join(); assert p.exitcode == 0")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=CLEAN_ENV)
    assert proc.returncode == 0, proc.stderr
    assert "torch.jit.script" not in proc.stderr and "FutureWarning" not in proc.stderr


def test_importing_the_library_changes_no_global_state():
    """Importing mocobench (and the packages that load Detectron2) leaves warnings.filters and os.environ as they
    were; the policy is the commands' to set (common/warnings_policy.py)."""
    code = ("import os, warnings\n"
            "filters, env = list(warnings.filters), dict(os.environ)\n"
            "import mocobench, mocobench.records\n"
            "assert warnings.filters == filters, [f for f in warnings.filters if f not in filters]\n"
            "assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items())\n"
            # these load Detectron2, torch and OpenCV, which set variables of their own (LD_LIBRARY_PATH, ...)
            "import mocobench.detection, mocobench.segmentation, mocobench.runner.run\n"
            "assert warnings.filters == filters, [f for f in warnings.filters if f not in filters]\n"
            "assert 'PYTHONWARNINGS' not in os.environ\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=CLEAN_ENV)
    assert proc.returncode == 0, proc.stderr
    assert "torch.jit.script" not in proc.stderr  # the library's own Detectron2 imports are quiet all the same


def test_the_command_policy_adds_its_rule_once_and_keeps_the_users():
    from mocobench.common.warnings_policy import ENV_RULE, apply_command_policy

    env = {"PYTHONWARNINGS": "error::DeprecationWarning"}
    apply_command_policy(env)
    apply_command_policy(env)
    assert env["PYTHONWARNINGS"].split(",") == ["error::DeprecationWarning", ENV_RULE]
