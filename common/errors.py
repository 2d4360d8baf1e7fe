"""The one error type that command-line entry points print without a traceback, and the one wrapper that
prints it."""
from __future__ import annotations

import sys
from typing import Callable


class UsageError(ValueError):
    """Bad input from the user (a missing file, an unknown name, an impossible setting): the message says
    what is wrong and what to do; CLIs print it and exit with status 2."""


USAGE_EXIT_STATUS = 2


def exit_status_on_usage_error(command: Callable[[], int]) -> int:
    """Run a command; a UsageError becomes one line on stderr ("error: ...") and exit status 2, never a
    traceback. Any other exception is a bug or a failed run and keeps its traceback."""
    try:
        return command()
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return USAGE_EXIT_STATUS
