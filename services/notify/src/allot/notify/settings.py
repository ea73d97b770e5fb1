"""Notify settings: its own sealing keyring (channel secrets at rest), delivery policy, console URL."""

from __future__ import annotations

from pydantic import Field, model_validator

from allot.notify.adapters.sealing import SecretBox
from allot.notify.domain.policy import RetryPolicy
from allot.runtime.sealing import SealingError
from allot.runtime.settings import InsecureConfiguration, Settings


class SealingNotConfigured(InsecureConfiguration):
    """The notifier cannot seal or open channel secrets: ALLOT_SEALING_PRIVATE_KEYS is missing or malformed."""


class NotifySettings(Settings):
    """ALLOT_* variables; ALLOT_SEALING_PRIVATE_KEYS must hold the notifier's key (``allot keys generate``)."""

    console_url: str = Field(default="", description="Base URL of the Allot console; messages link to its pages.")
    notify_allow_loopback: bool = Field(
        default=False, description="Development only: channels may post to 127.0.0.1 / ::1 (local receivers).")
    notify_retry_base_s: float = Field(default=5.0, gt=0, description="First retry delay; doubles per attempt.")
    notify_retry_max_s: float = Field(default=3600.0, gt=0)
    notify_max_attempts: int = Field(default=8, ge=1, le=50, description="Attempts before a delivery goes to the DLQ.")
    notify_disable_after: int = Field(default=5, ge=1, description="Consecutive failed attempts that disable a "
                                                                     "channel (its admins are told).")
    notify_dedupe_window_s: float = Field(default=600.0, ge=0, description="Same condition, same channel: sent once "
                                                                            "in this window.")
    notify_digest_threshold: int = Field(default=5, ge=2, description="This many due messages for one channel go "
                                                                       "out as one digest.")
    notify_rate_per_minute: int = Field(default=20, ge=1, le=1000, description="Messages per channel per minute; "
                                                                                 "more wait and go out as a digest.")
    notify_poll_interval_s: float = Field(default=1.0, gt=0)
    notify_timeout_s: float = Field(default=10.0, gt=0, description="Per request (HTTP) or session (SMTP).")
    notify_lease_s: float = Field(default=120.0, gt=0, description="How long a claimed delivery is held by one "
                                                                    "worker before another may take it over.")

    @model_validator(mode="after")
    def _keyring_usable(self) -> NotifySettings:
        self.keyring()
        return self

    def keyring(self) -> SecretBox:
        """The notifier's keyring; SealingNotConfigured (refuse to start) when missing or malformed."""
        try:
            ring = SecretBox.parse(self.sealing_private_keys.get_secret_value())
        except SealingError as exc:
            raise SealingNotConfigured(f"notify refuses to start: ALLOT_SEALING_PRIVATE_KEYS: {exc}") from None
        if not ring:
            raise SealingNotConfigured(
                "notify refuses to start: ALLOT_SEALING_PRIVATE_KEYS is empty; channel secrets are sealed at rest "
                "with it: 'kid:base64 private key' (any fresh keypair, e.g. the private line `allot keys generate "
                "--recipient executor --key-id notify-1` prints; it serves only the notifier)")
        return ring

    @property
    def development(self) -> bool:
        return self.env == "development"

    @property
    def loopback_allowed(self) -> bool:
        """Loopback receivers only in development, and only when asked for."""
        return self.development and self.notify_allow_loopback

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(base_s=self.notify_retry_base_s, max_delay_s=self.notify_retry_max_s,
                           max_attempts=self.notify_max_attempts, disable_after=self.notify_disable_after)
