"""Settings of every command and service: environment variables prefixed ``LIFECYCLE_``
(Contract 5), overridden by command-line flags where a command offers them."""

from __future__ import annotations

import os
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lifecycle.persistence.store import Store

if TYPE_CHECKING:
    from lifecycle.domain.messages import MessageRules

ApiRole = Literal["reader", "auditor", "admin", "publisher"]


def _one_per_core(description: str) -> Any:
    """A count of processes sharing a job, one per core by default (at most 8)."""
    return Field(
        default_factory=lambda: min(len(os.sched_getaffinity(0)), 8),
        ge=1,
        le=64,
        description=f"{description} (default: one per core)",
    )


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
    import_processes: int = _one_per_core(
        "processes a large import file is shared between, one shard of the customers each"
    )
    # Audit: the key signing the ledger is kept outside the database, here only.
    audit_hmac_key: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="HMAC key signing audit checkpoints, blocks and export manifests",
    )
    audit_seal_interval_seconds: float = Field(
        default=300.0, gt=0, description="how often `lifecycle run` seals the audit ledger"
    )
    # Kafka edge: topics, the embedded broker, the touchpoint consumer and the relay.
    kafka_touchpoints_topic: str = Field(default="crm.touchpoints", min_length=1)
    kafka_dead_letter_topic: str = Field(default="crm.touchpoints.dlq", min_length=1)
    kafka_relationship_events_topic: str = Field(default="crm.relationship-events", min_length=1)
    kafka_touchpoint_partitions: int = Field(
        default=6, ge=1, description="partitions of the touchpoint topic the broker creates"
    )
    kafka_broker_port: int = Field(
        default=9092, ge=1, le=65535, description="port of the embedded broker on 127.0.0.1"
    )
    kafka_consumer_group: str = Field(default="lifecycle-ingest", min_length=1)
    kafka_max_poll_records: int = Field(
        default=5_000, ge=1, description="messages the consumer takes per poll"
    )
    relay_batch_size: int = Field(default=1_000, ge=1, description="events relayed per batch")
    relay_idle_seconds: float = Field(
        default=0.5, gt=0, description="how long the relay waits when the log has nothing new"
    )
    relay_schema_version: Literal[1, 2] = Field(
        default=2,
        description="version of Contract 3 the relay publishes: 1 for consumers that have "
        "not upgraded",
    )
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("database_url")
    @classmethod
    def _names_a_store(cls, value: str) -> str:
        _store_of(value)  # InvalidDatabaseUrl names what is wrong with it
        return value

    @property
    def store(self) -> Store:
        """The store the database URL names, parsed once."""
        return _store_of(self.database_url)

    @field_validator("audit_hmac_key", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        # LIFECYCLE_AUDIT_HMAC_KEY= (empty) means unset: commands that need it say so.
        return None if value == "" else value

    # Read side: projections and the read API ------------------------------------------
    projection_page_size: int = Field(default=2_000, ge=1, description="events read at a time")
    projection_batch_size: int = Field(
        default=100_000, ge=1, description="events per read-model transaction at most"
    )
    projection_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    projection_pool_size: int = Field(default=2, ge=1, description="PostgreSQL connections")
    projection_rebuild_workers: int = _one_per_core(
        "processes a rebuild is shared between, one shard of the customers each"
    )
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    api_keys: Annotated[dict[str, ApiRole], NoDecode] = Field(
        default_factory=dict,
        description="bearer keys and their roles (reader, auditor, admin, publisher): JSON "
        '{"key": "reader"} or key:role,key:role',
    )
    api_ready_max_lag: int = Field(
        default=1_000, ge=0, description="/readyz: most events any read model may lag"
    )
    api_wait_seconds: float = Field(
        default=2.0, ge=0, le=30, description="how long min_position may wait before 409"
    )
    p_alive_at_risk: float = Field(
        default=0.3,
        gt=0,
        lt=1,
        description="the at-risk flag likely_lapsed: p_alive below this, once a model is fitted",
    )
    api_workers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="worker processes of `lifecycle serve`; unset: one per CPU, at most 4",
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_api_keys(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("{"):
            return orjson.loads(text)
        keys: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, separator, role = part.rpartition(":")
            if not separator or not key:
                raise ValueError("expected key:role pairs separated by commas, or a JSON object")
            keys[key] = role
        return keys

    @property
    def bootstrap_servers(self) -> str:
        """The Kafka cluster to use: ``kafka_bootstrap``, else the embedded broker's address."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_broker_port}"

    @property
    def message_rules(self) -> MessageRules:
        from lifecycle.domain.messages import MessageRules

        return MessageRules(
            default_currency=self.default_currency,
            max_future_skew=timedelta(seconds=self.max_future_skew_seconds),
        )


@lru_cache(maxsize=8)
def _store_of(database_url: str) -> Store:
    return Store.from_url(database_url)
