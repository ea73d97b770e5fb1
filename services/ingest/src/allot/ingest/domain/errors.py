"""Why an account cannot be read: each becomes account.profiled state=error with the message as detail."""

from __future__ import annotations


class AccountProblem(Exception):
    """Reading this account cannot go on until a person acts; ``str(exc)`` says what and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        #: what the platform said about the account before the problem (currency, time zone, name)
        self.seen: dict[str, str] = {}
