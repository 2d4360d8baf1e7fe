"""Run a command as a child process and kill -9 it when a condition on disk becomes true (no tests here)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]


def run_until(argv: list[str], trigger: Callable[[], bool], *, timeout: float = 300.0,
              poll: float = 0.002) -> tuple[str, str]:
    """Start `python argv...`; SIGKILL it the moment trigger() is true. Returns ("killed" | "exited:<rc>",
    its stderr tail). Polls every `poll` seconds, so that short windows (a checkpoint write) are hit."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    err_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"kill-{os.getpid()}-{time.monotonic_ns()}.err"
    with open(err_path, "w") as err:
        proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None:
                if trigger():
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    return "killed", err_path.read_text()[-3000:]
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{argv} ran past {timeout} s")
                time.sleep(poll)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    text = err_path.read_text()
    err_path.unlink()
    return f"exited:{proc.returncode}", text[-3000:]
