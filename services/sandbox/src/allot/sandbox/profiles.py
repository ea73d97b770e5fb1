"""Named delivery profiles: reproducible hidden curves for sandbox entities that did not bring their own."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime
from typing import Literal, get_args

from allot.sandbox.delivery import EntityCurve, make_portfolio

__all__ = ["PROFILES", "Profile", "derived_seed", "profile_curve"]

Profile = Literal["regular", "strong", "weak", "fading", "newcomer"]
PROFILES: tuple[str, ...] = get_args(Profile)

# make_portfolio(seed, 5) assigns roles by position: fading, newcomer, strong, weak, regular.
_PORTFOLIO_INDEX: dict[str, int] = {"fading": 0, "newcomer": 1, "strong": 2, "weak": 3, "regular": 4}


def derived_seed(seed: int, entity_id: str) -> int:
    """A stable 63-bit seed for one entity (independent of PYTHONHASHSEED and of other entities)."""
    digest = hashlib.sha256(f"{seed}/{entity_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def profile_curve(profile: str, *, seed: int, entity_id: str, origin_at: datetime) -> EntityCurve:
    """The hidden curve of ``entity_id`` under ``profile``: same (profile, seed, entity_id, origin_at), same curve.

    ``origin_at`` is day 0 of the entity's life (fatigue and frequency count from
    it); fading entities start to fade 17 days after it.
    """
    if profile not in _PORTFOLIO_INDEX:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    curve = make_portfolio(derived_seed(seed, entity_id), 5, origin_at=origin_at)[_PORTFOLIO_INDEX[profile]]
    return replace(curve, entity_id=entity_id, origin_at=origin_at)
