"""The one error type that command-line entry points print without a traceback."""
from __future__ import annotations


class UsageError(ValueError):
    """Bad input from the user (a missing file, an unknown name, an impossible setting): the message says
    what is wrong and what to do; CLIs print it and exit with status 2."""
