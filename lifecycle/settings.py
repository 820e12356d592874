"""Settings of every command and service: environment variables prefixed ``LIFECYCLE_``
(Contract 5), overridden by command-line flags where a command offers them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lifecycle.messages import MessageRules


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIFECYCLE_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./lifecycle.db",
        description="sqlite:///PATH (the main database file) or postgresql://…",
    )
    kafka_bootstrap: str | None = Field(
        default=None, description="host:port of a Kafka cluster; unset: the embedded broker"
    )
    policy_file: Path | None = Field(
        default=None, description="TOML lifecycle policy; unset: the built-in default v1"
    )
    default_currency: str = Field(default="EUR", pattern=r"^[A-Z]{3}$")
    max_future_skew_seconds: int = Field(default=300, ge=0)
    snapshot_interval: int = Field(default=100, ge=2)
    aggregate_cache_size: int = Field(default=50_000, ge=0)
    import_batch_size: int = Field(default=5_000, ge=1)
    # Audit: the key signing the ledger is kept outside the database, here only.
    audit_hmac_key: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="HMAC key signing audit checkpoints, blocks and export manifests",
    )
    audit_seal_interval_seconds: float = Field(
        default=300.0, gt=0, description="how often `lifecycle run` seals the audit ledger"
    )
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("audit_hmac_key", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        # LIFECYCLE_AUDIT_HMAC_KEY= (empty) means unset: commands that need it say so.
        return None if value == "" else value

    @property
    def message_rules(self) -> MessageRules:
        return MessageRules(
            default_currency=self.default_currency,
            max_future_skew=timedelta(seconds=self.max_future_skew_seconds),
        )
