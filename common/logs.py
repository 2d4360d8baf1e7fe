"""Messages of the suite go through `logging` (loggers "mocobench.<room>.<module>"); command-line
entry points call `cli_logging()` so that they reach the terminal as "[<room>] message".

The handler writes to whatever sys.stdout (or sys.stderr) is at the time of the message (so redirected
or captured output sees it), and the "mocobench" logger does not propagate: no message is printed twice when the
root logger is configured too (Detectron2 and pytest configure it).
"""
from __future__ import annotations

import logging
import sys

ROOT = "mocobench"


class _CurrentStdout(logging.StreamHandler):
    def __init__(self) -> None:
        self.target = "stdout"
        super().__init__(sys.stdout)

    @property
    def stream(self):  # the stream of the moment, not the one at set-up
        return getattr(sys, self.target)

    @stream.setter
    def stream(self, value) -> None:
        pass


class _RoomFormatter(logging.Formatter):
    """"[pretrain] message" for mocobench.pretrain.trainer; warnings and errors say so."""

    def format(self, record: logging.LogRecord) -> str:
        parts = record.name.split(".")
        room = parts[1] if len(parts) > 1 and parts[0] == ROOT else record.name
        level = "" if record.levelno <= logging.INFO else f"{record.levelname}: "
        return f"[{room}] {level}{record.getMessage()}"


def cli_logging(level: int = logging.INFO, stream: str = "stdout") -> None:
    """Send the suite's messages to stdout or stderr (idempotent; the last call chooses the stream)."""
    logger = logging.getLogger(ROOT)
    logger.setLevel(level)
    logger.propagate = False
    handler = next((h for h in logger.handlers if isinstance(h, _CurrentStdout)), None)
    if handler is None:
        handler = _CurrentStdout()
        handler.setFormatter(_RoomFormatter())
        logger.addHandler(handler)
    handler.target = stream
