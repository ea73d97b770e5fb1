"""The one settings loader: every service reads its configuration from ALLOT_* environment variables."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    kafka_enable_idempotence: bool = Field(default=False, description="On for Apache Kafka; the embedded broker lacks it.")
    kafka_session_timeout_ms: int = 6000
    kafka_heartbeat_interval_ms: int = 1500
    kafka_max_batch: int = 500
    consumer_group: str = Field(default="", description="Kafka consumer group; defaults to the service name.")
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
    approval_secret: SecretStr = SecretStr("dev-only-approval-secret-change-me")

    # Product switches
    ai_native_enabled: bool = True

    @property
    def schema(self) -> str:
        """Postgres schema owned by this service."""
        return self.database_schema or self.service_name.replace("-", "_")


@lru_cache(maxsize=1)
def load_settings() -> Settings:
    """Read the environment once."""
    return Settings()
