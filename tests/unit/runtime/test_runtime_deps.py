"""Typed dependencies and settings, reached one way (allot.runtime.deps)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from allot.pools.settings import PoolsSettings
from allot.runtime.deps import ReadyDetails, maybe, need, provide, settings_of
from allot.runtime.settings import Settings


class _Ctx:
    def __init__(self) -> None:
        self.extra: dict[Any, Any] = {}


class Wake(asyncio.Event):
    """A dependency type of a service's own (as pools' AllocationWake)."""


def test_a_provided_object_is_found_by_its_class_and_only_by_it() -> None:
    ctx = _Ctx()
    wake = provide(ctx, Wake())
    assert need(ctx, Wake) is wake
    assert maybe(ctx, Wake) is wake
    assert maybe(ctx, ReadyDetails) is None
    with pytest.raises(LookupError, match="no ReadyDetails provided"):
        need(ctx, ReadyDetails)


def test_settings_come_back_as_the_service_class_or_a_clear_error() -> None:
    ctx = _Ctx()
    provide(ctx, PoolsSettings(pools_history_days=9), as_type=Settings)
    assert settings_of(ctx, PoolsSettings).pools_history_days == 9
    assert isinstance(settings_of(ctx, Settings), PoolsSettings)
    other = _Ctx()
    provide(other, Settings(), as_type=Settings)
    with pytest.raises(TypeError, match="runs with Settings, not PoolsSettings"):
        settings_of(other, PoolsSettings)


def test_ready_details_report_only_a_mapping() -> None:
    assert ReadyDetails(lambda: {"meta": "expires soon"})() == {"meta": "expires soon"}
    assert ReadyDetails(lambda: None)() is None
