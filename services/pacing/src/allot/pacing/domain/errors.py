"""Errors raised by the pure pacing domain."""

from __future__ import annotations


class PacingInputError(ValueError):
    """Raised for inputs no retry can fix (negative money, naive datetimes, bad config).

    It subclasses ``ValueError`` so callers may catch either; handlers route it
    to the dead-letter queue as an invalid message.
    """
