"""Pacing's own settings reach the running service: keyword overrides are not dropped for the environment's."""

from __future__ import annotations

from allot.pacing.service import SPEC
from allot.pacing.settings import PacingSettings


def test_the_service_declares_pacing_settings() -> None:
    # create_app builds the service's settings as this class, so settings_of(ctx, PacingSettings) finds them
    # (the running scheduler's use of an override is checked in tests/service/pacing/test_pacing_service_state.py)
    assert SPEC.settings_class is PacingSettings
