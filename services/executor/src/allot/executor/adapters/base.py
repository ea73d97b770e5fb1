"""The platform port: what the executor needs from any ad platform, and the two error kinds it must handle.

Every adapter maps its platform's failures onto two exception types (and their
subclasses) so the executor's retry policy is platform-independent:

* :class:`TransientPlatformError` — retrying the same absolute write later may
  succeed (rate limit, 5xx, timeout, connection failure). A timed-out write may
  or may not have been applied; because every write is absolute (set budget to
  X, set status to Y), re-reading and retrying is safe.
  :class:`PlatformDeferred` (own throttle) and :class:`PlatformConfigError`
  (e.g. an expired API version) are retried without counting an attempt.
* :class:`PermanentPlatformError` — retrying cannot help (invalid parameter,
  unknown entity, bad credentials); :class:`PlatformNotConnected` (no token for
  the workspace and account) makes the action ``rejected``.

No message produced by an adapter ever contains a credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from allot.contracts.platforms import DEFAULT_MIN_BUDGET_CENTS, PLATFORM_MIN_BUDGET_CENTS, min_budget_cents

__all__ = [
    "DEFAULT_MIN_BUDGET_CENTS",
    "PLATFORM_MIN_BUDGET_CENTS",
    "EntityRef",
    "EntityState",
    "PermanentPlatformError",
    "PlatformAuthError",
    "PlatformClient",
    "PlatformConfigError",
    "PlatformDeferred",
    "PlatformNotConnected",
    "PlatformError",
    "TransientPlatformError",
    "WritableStatus",
    "WriteResult",
    "min_budget_cents",
    "redact",
]

WritableStatus = Literal["active", "paused"]


@dataclass(frozen=True, slots=True)
class EntityRef:
    """Which entity on which platform: enough for any adapter to address it."""

    platform: str
    ad_account_id: str
    entity_type: str
    """``campaign``, ``adset`` or ``ad``."""
    entity_id: str
    workspace_id: str = ""
    """The workspace whose action this is: adapters with per-workspace credentials pick the token by it."""


@dataclass(frozen=True, slots=True)
class EntityState:
    """What the platform says about an entity right now."""

    budget_cents: int | None
    """Daily budget in the account currency's minor units; None when the entity has no daily budget of its own."""
    status: str
    """``active``, ``paused`` or ``deleted`` (normalised across platforms)."""
    currency: str
    """ISO 4217 code of ``budget_cents``."""
    name: str
    ad_account_id: str | None = None
    """The ad account the platform says the entity belongs to (None when it does not say)."""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Proof that the platform accepted a write."""

    response_id: str
    """The platform's id of the write call (sandbox write id, Graph trace id), for the action ledger."""
    new_entity_id: str | None = None
    """For a relaunch: the id of the copy the platform created."""


class PlatformError(Exception):
    """Base of every adapter error; ``str(err)`` never contains a credential."""


class TransientPlatformError(PlatformError):
    """A failure that retrying the same absolute write later may fix (rate limit, 5xx, timeout, connection)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
        """Seconds the platform asked us to wait, or None when it did not say."""


class PlatformDeferred(TransientPlatformError):
    """Not the action's fault: the adapter held the call back (its own throttle) or is misconfigured.

    The executor retries after ``retry_after_s`` without counting an attempt, so a throttled or
    misconfigured adapter never uses up an action's attempts.
    """


class PlatformConfigError(PlatformDeferred):
    """The adapter's configuration is wrong (e.g. an expired Graph API version): an operator must fix it.

    Every action on the platform would fail the same way, so none is failed for it: the executor keeps
    them pending (retrying every ``retry_after_s``) for a bounded time, shows the problem in ``/readyz``,
    and only then fails them with this message.
    """


class PermanentPlatformError(PlatformError):
    """A failure that retrying cannot fix (invalid parameter, not found, auth); ``code`` is the platform's code."""

    def __init__(self, message: str, code: str | int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class PlatformAuthError(PermanentPlatformError):
    """The credentials were missing, invalid, expired or lack permission; a person must fix them."""


class PlatformNotConnected(PermanentPlatformError):
    """No credentials exist for this workspace and ad account: the action is rejected, never retried."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "not_connected")


@runtime_checkable
class PlatformClient(Protocol):
    """The executor's port to one ad platform. Implementations are safe to share within one event loop.

    Reads return the platform's current truth; writes are absolute (never
    relative), so a write that is retried after an ambiguous failure cannot
    compound. Every method raises only :class:`TransientPlatformError` or
    :class:`PermanentPlatformError`.

    ``idempotency_key`` (the executor passes its action id) is forwarded where
    the platform has a place for it (the sandbox logs it beside each write) and
    ignored where it has none (Graph API); it is never a substitute for the
    executor's own ledger.
    """

    platform: str

    async def get_entity(self, ref: EntityRef) -> EntityState:
        """Current budget, status, currency and name of ``ref``."""
        ...

    async def set_budget(self, ref: EntityRef, budget_cents: int, *, idempotency_key: str | None = None) -> WriteResult:
        """Set the daily budget of ``ref`` to exactly ``budget_cents`` (minor units of the account currency)."""
        ...

    async def set_status(
        self, ref: EntityRef, status: WritableStatus, *, idempotency_key: str | None = None
    ) -> WriteResult:
        """Set ``ref`` to ``active`` or ``paused``."""
        ...

    async def relaunch(self, ref: EntityRef, *, idempotency_key: str | None = None) -> WriteResult:
        """Copy ``ref`` into a fresh entity (Meta's ad relaunch); ``new_entity_id`` names the copy."""
        ...

    async def aclose(self) -> None:
        """Release connections; the client is unusable afterwards."""
        ...


class PlatformClients(dict[str, PlatformClient]):
    """The running executor's client per platform name (provided at start, see allot.runtime.deps)."""


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every occurrence of each non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
