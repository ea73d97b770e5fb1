"""Settings of the ingest service (ALLOT_INGEST_* on top of the shared ALLOT_* settings)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from allot.contracts.platforms import META_DEFAULT_API_VERSION
from allot.runtime.settings import Settings


class IngestSettings(Settings):
    """Shared settings plus where Meta is, how often and how far back to read."""

    ingest_graph_url: str = Field(default="https://graph.facebook.com", description="Graph API base URL.")
    ingest_graph_api_version: str = Field(default=META_DEFAULT_API_VERSION, pattern=r"^v\d+\.\d+$",
                                          description="Graph API version (the executor's table of Meta's expiry "
                                                      "dates warns near expiry).")
    ingest_meta_app_secret: SecretStr = Field(
        default=SecretStr(""), description="App secret: when set every call carries appsecret_proof.")
    ingest_interval_s: int = Field(default=3600, ge=60, description="Clock seconds between reads of one account.")
    ingest_scan_interval_s: float = Field(default=5.0, gt=0, description="REAL seconds between checks for due "
                                                                          "accounts.")
    ingest_window_days: int = Field(default=7, ge=1, le=37, description="Trailing local days re-read every cycle "
                                                                         "so late conversions restate intervals.")
    ingest_conversion_action: str = Field(default="purchase",
                                          description="actions/action_values action_type counted as conversions.")
    ingest_async_min_entities: int = Field(default=200, ge=0, description="Accounts with at least this many ad "
                                                                           "sets use async report runs.")
    ingest_slow_at_pct: float = Field(default=75.0, ge=0, le=100, description="Usage % at which calls slow down.")
    ingest_max_delay_s: float = Field(default=60.0, ge=0, description="Pause between calls at 100 % usage.")
    ingest_throttled_wait_s: float = Field(default=60.0, ge=0, description="Wait after a throttling error when Meta "
                                                                           "gives no estimated_time_to_regain_access.")
    ingest_async_poll_s: float = Field(default=2.0, ge=0, description="Clock seconds between report run polls.")
