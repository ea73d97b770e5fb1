"""Protections: pure checks over history facts the caller loads and passes in.

Windows are half-open on the age of an event: an event is *inside* a window of
length W when ``now - at < W``. Hence a cooldown of 360 minutes blocks at
359:59 and allows at exactly 360:00; an action in flight for 29:59 blocks and
one in flight for 30:00 does not; an outcome exactly 24 h old is outside the
failure and circuit-breaker windows. "Per day" means the current UTC calendar
day: an execution is the rule's, and a rule may span accounts in several time
zones (the time ranges, by contrast, use each account's local day).

What each check is fed (decided by the service, documented here):

- cooldown: when *this rule* last acted on the entity (successfully applied);
- max executions per day: start times of *this rule's* executions that acted
  (issued at least one action); the current run is the (n+1)-th, so with the
  default 3 the 3rd run is allowed and the 4th is not;
- pending action: start times of actions on the entity still in flight, from
  any rule or pool (two writers must not race on one entity);
- failure backoff: outcomes of actions on the entity (any rule); the trailing
  run of failures inside the last 24 h counts, a success resets it;
- circuit breaker: outcomes of *this rule's* actions in the last 24 h.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from allot.rules.domain.reasons import SkipReason
from allot.rules.domain.timeranges import ensure_utc

PENDING_ACTION_WINDOW: Final[timedelta] = timedelta(minutes=30)
FAILURE_BACKOFF_THRESHOLD: Final[int] = 5
FAILURE_BACKOFF_WINDOW: Final[timedelta] = timedelta(hours=24)
CIRCUIT_BREAKER_MIN_ERRORS: Final[int] = 20
CIRCUIT_BREAKER_MAX_ERROR_RATE: Final[float] = 0.5
CIRCUIT_BREAKER_WINDOW: Final[timedelta] = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """The result of one executed action (from ``action.executed``)."""

    at: datetime
    success: bool
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RuleHistory:
    """History facts for one rule, loaded by the service before evaluation (all times aware)."""

    execution_started_at: Sequence[datetime] = ()
    last_acted_at: Mapping[str, datetime] = field(default_factory=dict)
    pending_actions_since: Mapping[str, Sequence[datetime]] = field(default_factory=dict)
    entity_outcomes: Mapping[str, Sequence[ActionOutcome]] = field(default_factory=dict)
    rule_outcomes: Sequence[ActionOutcome] = ()


@dataclass(frozen=True, slots=True)
class ProtectionCheck:
    """Allow, or skip with a stable reason code and a human-readable detail."""

    allowed: bool
    reason: SkipReason | None = None
    detail: str = ""

    @classmethod
    def allow(cls) -> ProtectionCheck:
        return _ALLOW

    @classmethod
    def skip(cls, reason: SkipReason, detail: str) -> ProtectionCheck:
        return cls(False, reason, detail)


_ALLOW: Final = ProtectionCheck(True)


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.1f}"


def check_cooldown(last_acted_at: datetime | None, now: datetime, cooldown_minutes: int) -> ProtectionCheck:
    """Skip while less than ``cooldown_minutes`` have passed since this rule last acted on the entity."""
    if last_acted_at is None or cooldown_minutes <= 0:
        return ProtectionCheck.allow()
    age = ensure_utc(now) - ensure_utc(last_acted_at)
    if age < timedelta(minutes=cooldown_minutes):
        return ProtectionCheck.skip(
            SkipReason.COOLDOWN, f"last acted {_minutes(age)} min ago; cooldown is {cooldown_minutes} min"
        )
    return ProtectionCheck.allow()


def executions_today(execution_started_at: Iterable[datetime], now: datetime) -> int:
    """How many executions started on the current UTC day, up to ``now``."""
    now_utc = ensure_utc(now)
    today = now_utc.date()
    return sum(1 for t in execution_started_at if (u := ensure_utc(t)).date() == today and u <= now_utc)


def check_max_executions(
    execution_started_at: Iterable[datetime], now: datetime, max_executions_per_day: int
) -> ProtectionCheck:
    """Skip when this run would exceed ``max_executions_per_day`` acting executions in the current UTC day."""
    done = executions_today(execution_started_at, now)
    if done >= max_executions_per_day:
        return ProtectionCheck.skip(
            SkipReason.MAX_EXECUTIONS_PER_DAY,
            f"{done} executions today; the maximum is {max_executions_per_day} per day",
        )
    return ProtectionCheck.allow()


def check_pending_action(
    pending_since: Iterable[datetime], now: datetime, window: timedelta = PENDING_ACTION_WINDOW
) -> ProtectionCheck:
    """Skip while any action on the entity has been in flight for less than ``window`` (30 min)."""
    now_utc = ensure_utc(now)
    for started in pending_since:
        age = now_utc - ensure_utc(started)
        if age < window:
            return ProtectionCheck.skip(
                SkipReason.PENDING_ACTION, f"an action has been in flight for {_minutes(age)} min"
            )
    return ProtectionCheck.allow()


def consecutive_failures(
    outcomes: Iterable[ActionOutcome], now: datetime, window: timedelta = FAILURE_BACKOFF_WINDOW
) -> int:
    """Length of the trailing run of failures among outcomes inside ``window``; a success ends it."""
    now_utc = ensure_utc(now)
    recent = sorted((o for o in outcomes if now_utc - ensure_utc(o.at) < window), key=lambda o: ensure_utc(o.at))
    streak = 0
    for outcome in reversed(recent):
        if outcome.success:
            break
        streak += 1
    return streak


def check_failure_backoff(
    outcomes: Iterable[ActionOutcome],
    now: datetime,
    threshold: int = FAILURE_BACKOFF_THRESHOLD,
    window: timedelta = FAILURE_BACKOFF_WINDOW,
) -> ProtectionCheck:
    """Skip the entity after ``threshold`` (5) consecutive failures within ``window`` (24 h)."""
    streak = consecutive_failures(outcomes, now, window)
    if streak >= threshold:
        return ProtectionCheck.skip(
            SkipReason.FAILURE_BACKOFF, f"{streak} consecutive failures in the last {window.total_seconds() / 3600:g} h"
        )
    return ProtectionCheck.allow()


@dataclass(frozen=True, slots=True)
class CircuitState:
    """Error statistics of a rule's recent outcomes and whether they trip the breaker."""

    errors: int
    total: int
    last_error: str | None
    tripped: bool

    @property
    def error_rate(self) -> float:
        return self.errors / self.total if self.total else 0.0


def circuit_state(
    outcomes: Iterable[ActionOutcome],
    now: datetime,
    *,
    min_errors: int = CIRCUIT_BREAKER_MIN_ERRORS,
    max_error_rate: float = CIRCUIT_BREAKER_MAX_ERROR_RATE,
    window: timedelta = CIRCUIT_BREAKER_WINDOW,
) -> CircuitState:
    """Tripped when, inside ``window``, errors >= ``min_errors`` and errors / outcomes > ``max_error_rate``."""
    now_utc = ensure_utc(now)
    recent = sorted((o for o in outcomes if now_utc - ensure_utc(o.at) < window), key=lambda o: ensure_utc(o.at))
    failures = [o for o in recent if not o.success]
    total = len(recent)
    errors = len(failures)
    last_error = next((o.error for o in reversed(failures) if o.error), None)
    tripped = errors >= min_errors and errors > max_error_rate * total
    return CircuitState(errors=errors, total=total, last_error=last_error, tripped=tripped)


def check_circuit_breaker(outcomes: Iterable[ActionOutcome], now: datetime) -> ProtectionCheck:
    """Skip the whole rule (and auto-pause it) when error rate > 50 % with 20+ errors in the last 24 h."""
    state = circuit_state(outcomes, now)
    if state.tripped:
        return ProtectionCheck.skip(
            SkipReason.CIRCUIT_BREAKER,
            f"error rate {state.error_rate:.1%} with {state.errors} errors in {state.total} actions in the last 24 h",
        )
    return ProtectionCheck.allow()


def dropped_error(entity_id: str, notes: Sequence[str]) -> str:
    """The error recorded on a rule's action the guardrails left out of an approved change set: the guardrails' notes
    that name its entity (arbitration and ownership say which entity they dropped), else all of them."""
    own = [n for n in notes if entity_id in n]
    told = "; ".join(own or notes)
    return f"dropped by the guardrails: {told}"[:2000] if told else "dropped by the guardrails"
