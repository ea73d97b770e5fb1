"""The one settings loader: every service reads its configuration from ALLOT_* environment variables."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from allot.runtime.sealing import Keyring

#: The approval secret a process gets when none is configured; accepted only with ALLOT_ENV=development.
DEV_APPROVAL_SECRET = "dev-only-approval-secret-change-me"
#: Secrets written in this project's files at some point (defaults, examples): never acceptable in production.
KNOWN_PUBLIC_SECRETS = frozenset({DEV_APPROVAL_SECRET, "local-only-approval-secret-change-me", "change-me", "secret"})
#: Shortest approval secret accepted outside development (characters; `openssl rand -hex 32` gives 64).
MIN_APPROVAL_SECRET_LEN = 32


class InsecureConfiguration(RuntimeError):
    """The process must not start with this configuration (e.g. a default approval secret outside development)."""


def key_fingerprint(secret: str) -> str:
    """A key id derived from a secret: the first 12 hex digits of its SHA-256 (reveals nothing usable)."""
    return "k-" + hashlib.sha256(secret.encode()).hexdigest()[:12]


def approval_secret_problems(secret: str, *, what: str = "ALLOT_APPROVAL_SECRET") -> list[str]:
    """Why ``secret`` is unfit to sign approvals outside development (empty list = fit)."""
    if secret in KNOWN_PUBLIC_SECRETS:
        return [f"{what} is a default written in Allot's source or examples: anyone can forge approvals with it"]
    if len(secret) < MIN_APPROVAL_SECRET_LEN:
        return [f"{what} is {len(secret)} characters long; at least {MIN_APPROVAL_SECRET_LEN} are required "
                "(e.g. `openssl rand -hex 32`)"]
    return []


class Settings(BaseSettings):
    """Configuration shared by all services; each service may subclass it for its own fields."""

    model_config = SettingsConfigDict(env_prefix="ALLOT_", extra="ignore")

    service_name: str = "allot"
    instance_id: str = Field(default="", description="Distinguishes instances of one service in logs.")

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    kafka_enable_idempotence: bool = Field(
        default=False, description="On for Apache Kafka; the embedded broker lacks it."
    )
    kafka_session_timeout_ms: int = 6000
    kafka_heartbeat_interval_ms: int = 1500
    kafka_max_batch: int = 500
    consumer_group: str = Field(default="", description="Kafka consumer group; defaults to the service name.")
    guardrails_url: str | None = Field(
        default=None, description="Base URL of the guardrails service: previews and simulations show its dry-run "
                                  "verdict per proposed action (unset: they say the verdict is unavailable).")
    consumer_parallelism: int = Field(
        default=2, ge=1, le=16,
        description="Concurrent key groups (a transaction and connection each) a by-key topic's batch is split into.")
    kafka_create_topics: bool = True
    kafka_replication_factor: int = 1

    # Postgres
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    database_schema: str = Field(default="", description="Schema the service owns; defaults to the service name.")
    database_pool_min: int = 1
    database_pool_max: int = 10

    # HTTP
    http_host: str = "127.0.0.1"
    http_port: int = 8000

    # Logging
    log_level: str = "INFO"

    # Clock: real time, or a simulated clock shared by every process through the same anchors.
    clock: Literal["real", "simulated"] = "real"
    clock_speed: float = Field(default=3600.0, gt=0, description="Simulated seconds per real second.")
    clock_anchor_real: float | None = Field(default=None, description="Unix time at which simulated time = anchor_sim.")
    clock_anchor_sim: datetime | None = None

    # Security
    api_keys: str = Field(
        default="[]",
        description="JSON list of {key_id, sha256, workspace_id, role}; only hashes are ever configured.",
    )
    env: Literal["production", "development"] = Field(
        default="production",
        description="'development' (ALLOT_ENV=development) is the only mode in which a service that signs or verifies "
                    "approvals starts with the default or a short approval secret.")
    approval_secret: SecretStr = SecretStr(DEV_APPROVAL_SECRET)
    approval_key_id: str = Field(
        default="", max_length=64,
        description="Id of approval_secret carried by every approval; empty = derived from the secret (fingerprint).")
    approval_previous_secret: SecretStr | None = Field(
        default=None, description="The key before the last rotation: verifiers still accept approvals signed with it.")
    approval_previous_key_id: str = Field(default="", max_length=64,
                                          description="Id of approval_previous_secret; empty = derived.")
    approval_previous_until: datetime | None = Field(
        default=None, description="End of the rotation window: after it the previous key is no longer accepted "
                                  "(unset = accepted while configured).")

    # Platform tokens sealed to one recipient service (allot.runtime.sealing; `allot keys generate`)
    sealing_private_keys: SecretStr = Field(
        default=SecretStr(""),
        description="ingest / executor: this service's private keys 'kid:base64,kid:base64' (first = current, "
                    "previous ones after it during a rotation). From a Kubernetes Secret.")
    sealing_public_keys: str = Field(
        default="", description="connections: 'ingest=kid:base64pub,executor=kid:base64pub', the keys tokens are "
                                "sealed to (public: it cannot open them).")

    # Tenancy
    require_connected_accounts: bool = Field(
        default=True,
        description="APIs refuse ad accounts not connected to the caller's workspace (account.profiled: Meta "
                    "connections, sandbox accounts bound to the workspace). Off (tests of unregistered sandbox "
                    "accounts), only accounts another workspace has connected are refused.")

    # Product switches
    ai_native_enabled: bool = True

    def approval_keys(self) -> ApprovalKeys:
        """The signing key (current) and the keys a verifier accepts, by key id."""
        current = self.approval_secret.get_secret_value()
        current_id = self.approval_key_id or key_fingerprint(current)
        previous: tuple[str, bytes, datetime | None] | None = None
        if self.approval_previous_secret is not None:
            prev = self.approval_previous_secret.get_secret_value()
            previous = (self.approval_previous_key_id or key_fingerprint(prev), prev.encode(),
                        self.approval_previous_until)
        return ApprovalKeys(current_id, current.encode(), previous)

    def check_approval_secrets(self) -> None:
        """Refuse (InsecureConfiguration) a default or short approval secret unless ALLOT_ENV=development."""
        if self.env == "development":
            return
        problems = approval_secret_problems(self.approval_secret.get_secret_value())
        if self.approval_previous_secret is not None:
            problems += approval_secret_problems(self.approval_previous_secret.get_secret_value(),
                                                 what="ALLOT_APPROVAL_PREVIOUS_SECRET")
        keys = self.approval_keys()
        if keys.previous is not None and keys.previous[0] == keys.current_id:
            problems.append("ALLOT_APPROVAL_PREVIOUS_KEY_ID equals the current key id; give each key its own id")
        if problems:
            raise InsecureConfiguration(
                f"{self.service_name} refuses to start: " + "; ".join(problems)
                + ". Set a random ALLOT_APPROVAL_SECRET (the same for guardrails and executor), or "
                  "ALLOT_ENV=development for a local experiment.")

    def sealing_keyring(self, recipient: Literal["ingest", "executor"]) -> Keyring:
        """This service's keyring for opening tokens sealed to ``recipient`` (SealingError on a malformed setting)."""
        from allot.runtime.sealing import Keyring

        return Keyring.parse(recipient, self.sealing_private_keys.get_secret_value())

    @property  # shadows pydantic's deprecated v1 classmethod BaseModel.schema(), which settings never use
    def schema(self) -> str:  # type: ignore[override]
        """Postgres schema owned by this service."""
        return self.database_schema or self.service_name.replace("-", "_")


@dataclass(frozen=True)
class ApprovalKeys:
    """Keys of approval signatures: the current one signs; verifiers also accept the previous one in its window."""

    current_id: str
    current: bytes
    previous: tuple[str, bytes, datetime | None] | None = None

    def verification_keys(self) -> dict[str, tuple[bytes, datetime | None]]:
        """key id → (secret, accepted until or None)."""
        keys: dict[str, tuple[bytes, datetime | None]] = {self.current_id: (self.current, None)}
        if self.previous is not None:
            keys.setdefault(self.previous[0], (self.previous[1], self.previous[2]))
        return keys


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """Read the environment once."""
    return Settings()
