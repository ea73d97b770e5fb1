"""Pacing's own settings reach the running service: keyword overrides are not dropped for the environment's."""

from __future__ import annotations

from allot.pacing.service import SPEC
from allot.pacing.settings import PacingSettings, pacing_settings
from allot.runtime.settings import Settings


def test_the_service_runs_with_pacing_settings_and_keeps_overrides() -> None:
    assert SPEC.settings_class is PacingSettings  # create_app builds the service's settings from it
    base = Settings(service_name="pacing")
    converted = pacing_settings(base)
    assert isinstance(converted, PacingSettings) and converted.service_name == "pacing"
    assert pacing_settings(PacingSettings(pacing_scan_interval_s=0.1)).pacing_scan_interval_s == 0.1
