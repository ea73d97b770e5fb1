"""A small market behind the Graph fake, for the `make run` demo: every ad set delivers hour by hour from the
daily budget it has at that hour, so a budget the executor writes changes what ingest reads next.

Each ad set has a hidden profile: value per unit of spend at low spend (``roas``), the daily spend at which its
returns have halved (``half_saturation``, a concave response: marginal ROAS falls as spend grows) and the most
its audience can absorb in a day (``cap``, so spend can stay below budget). Conversions are Poisson draws around
the expected value divided by the order value, from a seeded generator: the same seed and the same budgets give
the same delivery. Hours are whole UTC hours, recorded in the account's local day and hour as Insights reports
them (``hourly_stats_aggregated_by_advertiser_time_zone``). Paused ad sets deliver nothing.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from allot.fakes.meta.graph import MetaFakeState

__all__ = ["AdSetProfile", "MetaMarket"]

_HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class AdSetProfile:
    """The hidden response of one ad set (money in the account currency's Meta minor units)."""

    roas: float
    half_saturation: int
    cap: int | None = None
    order_value: int = 4_000
    cpm: int = 900  # cost per 1,000 impressions
    ctr: float = 0.012


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method for small means, a rounded normal approximation above 30."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class MetaMarket:
    """Writes hourly delivery into ``state.reads`` for every profiled ad set, up to a given time."""

    def __init__(self, state: MetaFakeState, profiles: dict[str, AdSetProfile], *, seed: int = 7) -> None:
        self.state = state
        self.profiles = profiles
        self.rng = random.Random(seed)
        self.filled_until: datetime | None = None

    def expected_daily_value(self, adset_id: str, daily_spend: int) -> float:
        """Value a day's spend returns in expectation (concave in spend)."""
        p = self.profiles[adset_id]
        return p.roas * daily_spend / (1 + daily_spend / p.half_saturation)

    def advance(self, now: datetime, *, start: datetime | None = None) -> int:
        """Deliver every whole hour that ended by ``now`` (from ``start`` the first time); returns hours written."""
        end = now.replace(minute=0, second=0, microsecond=0)
        hour = self.filled_until or (start or end).replace(minute=0, second=0, microsecond=0)
        written = 0
        while hour + _HOUR <= end:
            for adset_id in sorted(self.profiles):
                written += self._deliver(adset_id, hour)
            hour += _HOUR
        self.filled_until = hour
        return written

    def _deliver(self, adset_id: str, hour: datetime) -> int:
        obj = self.state.objects.get(adset_id)
        if obj is None or obj.status != "ACTIVE" or not obj.daily_budget:
            return 0
        p = self.profiles[adset_id]
        daily_spend = min(obj.daily_budget, p.cap) if p.cap is not None else obj.daily_budget
        spend = daily_spend // 24
        conversions = _poisson(self.rng, self.expected_daily_value(adset_id, daily_spend) / 24 / p.order_value)
        impressions = spend * 1000 // p.cpm
        zone = ZoneInfo(self.state.reads.timezones.get(obj.account_id, "UTC"))
        local = hour.astimezone(zone)
        self.state.reads.deliver(adset_id, local.date(), local.hour, spend=spend, impressions=impressions,
                                 clicks=round(impressions * p.ctr), actions={"purchase": conversions},
                                 action_values={"purchase": conversions * p.order_value})
        return 1
