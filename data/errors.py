"""The error of a user's data set that cannot be used as declared (a usage error: exit status 2)."""
from __future__ import annotations

from mocobench.common.errors import UsageError


class DatasetError(UsageError):
    """A user's data set cannot be used as declared; the message says what is wrong and how to fix it."""
