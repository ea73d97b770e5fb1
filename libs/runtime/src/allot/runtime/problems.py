"""Input a domain refuses, naming the request field: standard library only, so pure domain code may raise it.

A service's domain subclasses ``Problem`` (``ConnectionProblem``, ``NotifyProblem``) and its routes answer one with
``allot.runtime.http.problem_error``: the status (422 unless said otherwise), the code, the message and the field.
"""

from __future__ import annotations


class Problem(ValueError):
    """Input that cannot be accepted; ``field`` names the request field, ``message`` says why."""

    def __init__(self, field: str, message: str, *, status: int = 422, code: str = "validation_failed") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status
        self.code = code
