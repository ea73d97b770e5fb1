"""The pure budget pacing engine: expected vs actual spend, deviations, reallocations, snapshots.

Same inputs, same outputs: no clock reads (``current_time`` is an argument),
no I/O, no randomness.  Money is in currency units (floats, rounded to cents);
percentages are percent points rounded to 2 decimals.

Rules the seed left open, decided here:

* Rounding is to cents / hundredths of a percent point, halves away from
  zero on the float's shortest decimal spelling (``round2``), as a person
  checking the numbers by hand would round.
* Thresholds are exclusive and compared on the *rounded* deviation, so a
  deviation of exactly +10.00 raises nothing and exactly 25.00 is a warning.
* Expected spend of 0 (zero budget, before start, at start): ``pacing_pct`` is
  100.0 when nothing was spent (on pace); when something was spent it is
  measured against one cent (``ZERO_EXPECTED_FLOOR``), so any spend reads as
  large, finite overpacing and never divides by zero.
* Negative budgets or spend raise ``PacingInputError`` (a ``ValueError``).
* Campaign ``total_spend`` in a snapshot is the sum of channel spend; deals are
  a breakdown of the same money, not added on top.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Final

from allot.pacing.domain.curves import PacingCurve
from allot.pacing.domain.errors import PacingInputError
from allot.pacing.domain.models import (
    AlertLevel,
    ChannelSnapshot,
    DealPacing,
    DealSnapshot,
    PacingAlert,
    PacingConfig,
    PacingDirection,
    PacingSnapshot,
    ReallocationProposal,
    require_aware,
    require_finite_non_negative,
)

ZERO_EXPECTED_FLOOR: Final = 0.01
"""Expected spend (currency units) that positive spend is measured against when nothing was expected."""

SNAPSHOT_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://allot.dev/pacing/snapshot")
"""uuid5 namespace of deterministic snapshot ids."""

_LINEAR: Final = PacingCurve.linear()
_CENT: Final = Decimal("0.01")


def round2(value: float) -> float:
    """Round to 2 decimals, halves away from zero as by hand, never returning negative zero.

    The float's shortest decimal spelling (``repr``) is rounded, so ``15.625``
    gives ``15.63`` and ``2.675`` gives ``2.68`` (``round()`` would give
    ``15.62`` and ``2.67``).
    """
    if not math.isfinite(value):
        return value
    return float(Decimal(repr(value)).quantize(_CENT, rounding=ROUND_HALF_UP)) + 0.0


def _to_cents(amount: float) -> int:
    return int(Decimal(repr(round2(amount))).scaleb(2))


def snapshot_id_for(campaign_id: str, timestamp: datetime) -> str:
    """Return the deterministic snapshot id: uuid5 of ``campaign_id@<UTC isoformat of timestamp>``."""
    require_aware("timestamp", timestamp)
    # '@' never appears in an isoformat, so distinct (campaign, instant) pairs give distinct names.
    name = f"{campaign_id}@{timestamp.astimezone(UTC).isoformat()}"
    return str(uuid.uuid5(SNAPSHOT_NAMESPACE, name))


class BudgetPacingEngine:
    """Pure pacing calculations parameterised by a ``PacingConfig``."""

    __slots__ = ("config",)

    def __init__(self, config: PacingConfig | None = None) -> None:
        self.config: PacingConfig = config if config is not None else PacingConfig()

    # -- campaign-level arithmetic -------------------------------------------------

    def calculate_expected_spend(
        self,
        total_budget: float,
        flight_start: datetime,
        flight_end: datetime,
        current_time: datetime,
        curve: PacingCurve | None = None,
    ) -> float:
        """Return planned spend by ``current_time`` in currency units, rounded to cents: 0 before start, total from end
        on.

        With the default linear curve this is
        ``total_budget * elapsed_seconds / flight_seconds``.  A flight with
        ``flight_end <= flight_start`` is fully elapsed at and after its start.
        """
        budget = require_finite_non_negative("total_budget", total_budget)
        fraction = (curve or _LINEAR).planned_fraction(flight_start, flight_end, current_time)
        if fraction >= 1.0:
            return budget
        return round2(budget * fraction)

    def calculate_pacing_pct(self, actual_spend: float, expected_spend: float) -> float:
        """Return ``actual / expected * 100`` rounded to 2 decimals (100 = on pace); defined for expected 0."""
        return round2(self._raw_pacing_pct(actual_spend, expected_spend))

    def calculate_deviation_pct(self, actual_spend: float, expected_spend: float) -> float:
        """Return ``pacing_pct - 100`` rounded to 2 decimals: negative = underpacing, positive = overpacing."""
        return round2(self._raw_pacing_pct(actual_spend, expected_spend) - 100.0)

    def detect_deviation(self, actual_spend: float, expected_spend: float) -> PacingAlert | None:
        """Return an alert when the rounded deviation strictly exceeds a threshold, else None."""
        return self.classify_deviation(self.calculate_deviation_pct(actual_spend, expected_spend))

    def classify_deviation(self, deviation_pct: float) -> PacingAlert | None:
        """Return the alert for an already rounded deviation (percent points); thresholds are exclusive."""
        cfg = self.config
        if deviation_pct < -cfg.underpacing_critical_pct:
            return _alert(
                AlertLevel.CRITICAL, PacingDirection.UNDERPACING, deviation_pct, -cfg.underpacing_critical_pct
            )
        if deviation_pct < -cfg.underpacing_warning_pct:
            return _alert(AlertLevel.WARNING, PacingDirection.UNDERPACING, deviation_pct, -cfg.underpacing_warning_pct)
        if deviation_pct > cfg.overpacing_critical_pct:
            return _alert(AlertLevel.CRITICAL, PacingDirection.OVERPACING, deviation_pct, cfg.overpacing_critical_pct)
        if deviation_pct > cfg.overpacing_warning_pct:
            return _alert(AlertLevel.WARNING, PacingDirection.OVERPACING, deviation_pct, cfg.overpacing_warning_pct)
        return None

    @staticmethod
    def _raw_pacing_pct(actual_spend: float, expected_spend: float) -> float:
        actual = require_finite_non_negative("actual_spend", actual_spend)
        expected = require_finite_non_negative("expected_spend", expected_spend)
        if expected == 0.0:
            if actual == 0.0:
                return 100.0
            expected = ZERO_EXPECTED_FLOOR
        return actual / expected * 100.0

    # -- channels and reallocation --------------------------------------------------

    def build_channel_snapshot(
        self,
        channel: str,
        allocated_budget: float,
        spend: float,
        *,
        total_budget: float,
        campaign_expected_spend: float,
        impressions: int = 0,
        fill_rate: float = 0.0,
    ) -> ChannelSnapshot:
        """Return the channel's pacing with ``expected = campaign_expected * allocated / total`` (0 when total is 0)."""
        expected = _channel_expected(allocated_budget, total_budget, campaign_expected_spend)
        deviation = self.calculate_deviation_pct(spend, expected)
        return ChannelSnapshot(
            channel=channel,
            allocated_budget=allocated_budget,
            spend=spend,
            pacing_pct=self.calculate_pacing_pct(spend, expected),
            impressions=impressions,
            effective_cpm=effective_cpm(spend, impressions),
            fill_rate=fill_rate,
            expected_spend=expected,
            deviation_pct=deviation,
            alert=self.classify_deviation(deviation),
        )

    def propose_reallocations(
        self,
        channel_snapshots: Sequence[ChannelSnapshot],
        total_budget: float,
        expected_spend: float,
        currency: str | None = None,
    ) -> list[ReallocationProposal]:
        """Return proposals that never take more than a source's underspend nor give more than a target's overspend.

        Expected spend per channel is recomputed from the arguments
        (``expected_spend * allocated_budget / total_budget``); the pacing
        fields stored on the snapshots are ignored.  Sources (deviation below
        ``-underpacing_warning_pct``) are taken largest underspend first,
        targets (deviation above ``+overpacing_warning_pct``) largest
        overspend first, ties by channel name.  A channel with no allocated budget is neither (its spend
        is unplanned spend, see ``ChannelResult.unplanned_spend_cents``).  Each pair moves
        ``min(remaining underspend, remaining overspend, cap)`` where cap is
        ``max_reallocation_pct`` % of ``total_budget`` rounded down to the cent; amounts below
        ``min_reallocation_amount`` are dropped and move nothing.  Reasons show amounts in ``currency``
        (``format_money``); without one they use the seed's "$".
        """
        budget = require_finite_non_negative("total_budget", total_budget)
        campaign_expected = require_finite_non_negative("expected_spend", expected_spend)
        _require_unique([c.channel for c in channel_snapshots], "channel")
        if budget == 0.0:
            return []
        cfg = self.config
        # Bookkeeping in integer cents so the totals invariants hold exactly.
        # The cap is rounded down so no proposal exceeds max_reallocation_pct % of the budget.
        cap_cents = int(
            (Decimal(repr(budget)) * Decimal(repr(cfg.max_reallocation_pct))).to_integral_value(ROUND_FLOOR)
        )
        min_cents = int((Decimal(repr(cfg.min_reallocation_amount)) * 100).to_integral_value(ROUND_CEILING))

        underspend: dict[str, int] = {}
        overspend: dict[str, int] = {}
        deviations: dict[str, float] = {}
        for snap in channel_snapshots:
            expected = _channel_expected(snap.allocated_budget, budget, campaign_expected)
            deviation = self.calculate_deviation_pct(snap.spend, expected)
            deviations[snap.channel] = deviation
            if snap.allocated_budget == 0.0:
                continue  # unplanned spend: reported, never a source or a target of more budget
            gap_cents = _to_cents(expected) - _to_cents(snap.spend)
            if deviation < -cfg.underpacing_warning_pct and gap_cents > 0:
                underspend[snap.channel] = gap_cents
            elif deviation > cfg.overpacing_warning_pct and gap_cents < 0:
                overspend[snap.channel] = -gap_cents

        sources = sorted(underspend, key=lambda name: (-underspend[name], name))
        targets = sorted(overspend, key=lambda name: (-overspend[name], name))
        remaining_out = dict(underspend)
        remaining_in = dict(overspend)
        proposals: list[ReallocationProposal] = []
        for source in sources:
            for target in targets:
                uncapped = min(remaining_out[source], remaining_in[target])
                amount = min(uncapped, cap_cents)
                if amount <= 0 or amount < min_cents:
                    continue
                remaining_out[source] -= amount
                remaining_in[target] -= amount
                proposals.append(
                    ReallocationProposal(
                        source_channel=source,
                        target_channel=target,
                        amount=amount / 100,
                        reason=_reason(
                            source=source,
                            target=target,
                            source_deviation=deviations[source],
                            target_deviation=deviations[target],
                            underspend_cents=underspend[source],
                            overspend_cents=overspend[target],
                            amount_cents=amount,
                            capped=cap_cents < uncapped,
                            max_reallocation_pct=cfg.max_reallocation_pct,
                            currency=currency,
                        ),
                    )
                )
        return proposals

    # -- deals -----------------------------------------------------------------------

    def calculate_deal_pacing(
        self,
        deal_snapshot: DealSnapshot,
        flight_start: datetime,
        flight_end: datetime,
        current_time: datetime,
        curve: PacingCurve | None = None,
    ) -> DealPacing:
        """Return the deal's pacing against its own allocated budget over the campaign flight."""
        expected = self.calculate_expected_spend(
            deal_snapshot.allocated_budget, flight_start, flight_end, current_time, curve
        )
        deviation = self.calculate_deviation_pct(deal_snapshot.spend, expected)
        return DealPacing(
            deal_id=deal_snapshot.deal_id,
            pacing_pct=self.calculate_pacing_pct(deal_snapshot.spend, expected),
            expected_spend=expected,
            actual_spend=deal_snapshot.spend,
            deviation_pct=deviation,
            alert=self.classify_deviation(deviation),
        )

    # -- snapshot --------------------------------------------------------------------

    def generate_snapshot(
        self,
        campaign_id: str,
        total_budget: float,
        flight_start: datetime,
        flight_end: datetime,
        current_time: datetime,
        channel_data: Mapping[str, Mapping[str, object]],
        deal_data: Sequence[Mapping[str, object] | DealSnapshot],
        snapshot_id: str | None = None,
        curve: PacingCurve | None = None,
        currency: str | None = None,
    ) -> PacingSnapshot:
        """Return the campaign's pacing at ``current_time`` at campaign, channel and deal level, with proposals.

        ``channel_data`` maps channel name to ``allocated_budget`` and ``spend``
        (required) and optional ``impressions`` and ``fill_rate``; channels keep
        the mapping's order.  ``deal_data`` items are ``DealSnapshot`` or
        mappings with ``deal_id``, ``allocated_budget``, ``spend`` and optional
        ``impressions``, ``effective_cpm`` (derived from spend and impressions
        when absent), ``win_rate``, ``fill_rate``.  ``snapshot_id`` defaults
        to ``snapshot_id_for(campaign_id, current_time)``.
        """
        budget = require_finite_non_negative("total_budget", total_budget)
        expected = self.calculate_expected_spend(budget, flight_start, flight_end, current_time, curve)

        channels = tuple(
            self.build_channel_snapshot(
                name,
                _required_number(data, "allocated_budget", f"channel {name}"),
                _required_number(data, "spend", f"channel {name}"),
                total_budget=budget,
                campaign_expected_spend=expected,
                impressions=_optional_int(data, "impressions", f"channel {name}"),
                fill_rate=_optional_number(data, "fill_rate", f"channel {name}") or 0.0,
            )
            for name, data in channel_data.items()
        )
        total_spend = round2(math.fsum(c.spend for c in channels))

        deals: list[DealSnapshot] = []
        for item in deal_data:
            deal = item if isinstance(item, DealSnapshot) else _deal_from_mapping(item)
            pacing = self.calculate_deal_pacing(deal, flight_start, flight_end, current_time, curve)
            deals.append(
                DealSnapshot(
                    deal_id=deal.deal_id,
                    allocated_budget=deal.allocated_budget,
                    spend=deal.spend,
                    impressions=deal.impressions,
                    effective_cpm=deal.effective_cpm,
                    win_rate=deal.win_rate,
                    fill_rate=deal.fill_rate,
                    pacing_pct=pacing["pacing_pct"],
                    expected_spend=pacing["expected_spend"],
                    deviation_pct=pacing["deviation_pct"],
                    alert=pacing["alert"],
                )
            )
        _require_unique([d.deal_id for d in deals], "deal_id")

        deviation = self.calculate_deviation_pct(total_spend, expected)
        return PacingSnapshot(
            snapshot_id=snapshot_id if snapshot_id is not None else snapshot_id_for(campaign_id, current_time),
            campaign_id=campaign_id,
            timestamp=current_time.astimezone(UTC),
            total_budget=budget,
            total_spend=total_spend,
            pacing_pct=self.calculate_pacing_pct(total_spend, expected),
            expected_spend=expected,
            deviation_pct=deviation,
            channel_snapshots=channels,
            deal_snapshots=tuple(deals),
            recommendations=tuple(self.propose_reallocations(channels, budget, expected, currency)),
            alert=self.classify_deviation(deviation),
        )


# -- helpers -------------------------------------------------------------------------


def effective_cpm(spend: float, impressions: int) -> float:
    """Return spend per 1,000 impressions rounded to cents, 0.0 when there are no impressions."""
    if impressions <= 0:
        return 0.0
    return round2(spend / impressions * 1000.0)


CURRENCY_SYMBOLS: Final = {"USD": "$", "EUR": "€", "GBP": "£"}
"""Currencies whose amounts read with a symbol in front; every other one reads as ``1,234.56 JPY``."""


def format_money(cents: int, currency: str | None) -> str:
    """An amount in hundredths for a person: ``$1,234.56``, ``€1,234.56``, ``1,234.56 CHF``; "$" without a currency."""
    amount = f"{cents / 100:,.2f}"
    if currency is None:
        return f"${amount}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{amount}" if symbol else f"{amount} {currency}"


def _channel_expected(allocated_budget: float, total_budget: float, campaign_expected: float) -> float:
    allocated = require_finite_non_negative("allocated_budget", allocated_budget)
    total = require_finite_non_negative("total_budget", total_budget)
    expected = require_finite_non_negative("expected_spend", campaign_expected)
    if total == 0.0:
        return 0.0
    return round2(expected * (allocated / total))


def _format_pct(value: float, threshold: float) -> str:
    # One decimal as in the seed's messages, unless one decimal would hide that
    # the threshold was exceeded (e.g. -25.01 against -25.0).
    shown = f"{value:+.1f}"
    if abs(float(shown)) <= abs(threshold):
        shown = f"{value:+.2f}"
    return shown


def _alert(level: AlertLevel, direction: PacingDirection, deviation_pct: float, threshold_pct: float) -> PacingAlert:
    message = (
        f"{level.value.capitalize()} {direction.value}: "
        f"{_format_pct(deviation_pct, threshold_pct)}% deviation (threshold: {threshold_pct:+.1f}%)"
    )
    return PacingAlert(
        level=level,
        direction=direction,
        deviation_pct=deviation_pct,
        threshold_pct=threshold_pct,
        message=message,
    )


def _reason(
    *,
    source: str,
    target: str,
    source_deviation: float,
    target_deviation: float,
    underspend_cents: int,
    overspend_cents: int,
    amount_cents: int,
    capped: bool,
    max_reallocation_pct: float,
    currency: str | None = None,
) -> str:
    text = (
        f"Move {format_money(amount_cents, currency)} from {source} to {target}: "
        f"{source} is underpacing at {source_deviation:+.2f}% ({format_money(underspend_cents, currency)} behind "
        f"plan), {target} is overpacing at {target_deviation:+.2f}% ({format_money(overspend_cents, currency)} "
        "ahead of plan)"
    )
    if capped:
        text += f"; capped at {max_reallocation_pct:g}% of total budget"
    return text


def _require_unique(names: Sequence[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise PacingInputError(f"duplicate {what} {name!r}")
        seen.add(name)


def _required_number(data: Mapping[str, object], key: str, where: str) -> float:
    if key not in data:
        raise PacingInputError(f"{where}: missing {key!r}")
    return _as_number(data[key], f"{where}: {key}")


def _optional_number(data: Mapping[str, object], key: str, where: str) -> float | None:
    value = data.get(key)
    return None if value is None else _as_number(value, f"{where}: {key}")


def _optional_int(data: Mapping[str, object], key: str, where: str) -> int:
    value = data.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PacingInputError(f"{where}: {key} must be a non-negative integer, got {value!r}")
    return value


def _as_number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PacingInputError(f"{name} must be a number, got {value!r}")
    return require_finite_non_negative(name, value)


def _deal_from_mapping(data: Mapping[str, object]) -> DealSnapshot:
    deal_id = data.get("deal_id")
    if not isinstance(deal_id, str) or not deal_id:
        raise PacingInputError(f"deal: 'deal_id' must be a non-empty string, got {deal_id!r}")
    where = f"deal {deal_id}"
    spend = _required_number(data, "spend", where)
    impressions = _optional_int(data, "impressions", where)
    cpm = _optional_number(data, "effective_cpm", where)
    return DealSnapshot(
        deal_id=deal_id,
        allocated_budget=_required_number(data, "allocated_budget", where),
        spend=spend,
        impressions=impressions,
        effective_cpm=cpm if cpm is not None else effective_cpm(spend, impressions),
        win_rate=_optional_number(data, "win_rate", where) or 0.0,
        fill_rate=_optional_number(data, "fill_rate", where) or 0.0,
    )
