"""The composition root: every command and service builds its parts here, from settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lifecycle.application import LifecycleApplication
from lifecycle.personal import KeyStore, PersonalDataVault, PostgresKeyStore, SQLiteKeyStore
from lifecycle.policy import Policy
from lifecycle.settings import Settings
from lifecycle.store import Store

if TYPE_CHECKING:
    from eventsourcing.persistence import InfrastructureFactory, TrackingRecorder

    from consumers.broker import Topics
    from consumers.ingest import TouchpointIngest
    from consumers.relay import Relay


def load_policy(settings: Settings) -> Policy:
    if settings.policy_file is None:
        return Policy.default()
    return Policy.from_file(settings.policy_file)


def application_env(settings: Settings) -> dict[str, str]:
    store = Store.from_url(settings.database_url)
    return {
        **store.persistence_env(),
        # The write side caches aggregates between batches without re-reading them
        # (no fast-forward): a concurrent writer is caught as a version conflict and
        # the batch retried, so the cache is an optimisation, never a source of truth.
        "AGGREGATE_CACHE_MAXSIZE": str(settings.aggregate_cache_size),
        "AGGREGATE_CACHE_FASTFORWARD": "n",
        "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
    }


def build_application(settings: Settings) -> LifecycleApplication:
    return LifecycleApplication(
        env=application_env(settings),
        policy=load_policy(settings),
        snapshot_interval=settings.snapshot_interval,
        vault=build_vault(settings),
    )


def build_log_reader(settings: Settings) -> LifecycleApplication:
    """The application, to read its event log only (a rebuild's worker processes): its
    tables are not created (the process that started them made sure they exist, and
    concurrent DDL fails on PostgreSQL) and no key store is opened."""
    return LifecycleApplication(
        env={**application_env(settings), "CREATE_TABLE": "n"}, policy=load_policy(settings)
    )


def build_key_store(settings: Settings) -> KeyStore:
    """Per-customer keys: lifecycle.keys.db beside a SQLite database; a table on PostgreSQL."""
    store = Store.from_url(settings.database_url)
    if store.is_sqlite:
        return SQLiteKeyStore(store.sibling_path("keys"))
    from eventsourcing.postgres import PostgresFactory
    from eventsourcing.utils import Environment

    env = Environment("lifecycle_keys", {**store.persistence_env(), "POSTGRES_POOL_SIZE": "2"})
    return PostgresKeyStore(PostgresFactory(env).datastore, store.conninfo)


def build_vault(settings: Settings) -> PersonalDataVault:
    return PersonalDataVault(build_key_store(settings))


# Kafka edge: the consumer, the relay and their clients. Imported when used, so that
# commands without Kafka never load the client.


def kafka_topics(settings: Settings) -> Topics:
    from consumers.broker import Topics

    return Topics.from_settings(settings)


def build_ingest(
    settings: Settings,
    app: LifecycleApplication,
    *,
    bootstrap: str | None = None,
    topics: Topics | None = None,
    group_id: str | None = None,
) -> TouchpointIngest:
    """The touchpoint consumer; ``open(stop)`` or ``run(stop)`` it."""
    from consumers.ingest import TouchpointIngest

    topics = topics or kafka_topics(settings)
    return TouchpointIngest(
        app,
        bootstrap=bootstrap or settings.bootstrap_servers,
        topic=topics.touchpoints,
        group_id=group_id or settings.kafka_consumer_group,
        dead_letter_topic=topics.dead_letters,
        rules=settings.message_rules,
        max_records=settings.kafka_max_poll_records,
    )


def build_relay_tracking(settings: Settings) -> InfrastructureFactory[TrackingRecorder]:
    """Where the relay stores its position; close it after the relay."""
    from consumers.relay import relay_tracking_factory

    return relay_tracking_factory(Store.from_url(settings.database_url))


def build_relay(
    settings: Settings,
    app: LifecycleApplication,
    tracking: TrackingRecorder,
    *,
    bootstrap: str | None = None,
    topics: Topics | None = None,
) -> Relay:
    """The outbound relay; ``open(stop)`` or ``run(stop)`` it."""
    from consumers.relay import Relay

    topics = topics or kafka_topics(settings)
    return Relay(
        app,
        tracking,
        bootstrap=bootstrap or settings.bootstrap_servers,
        topic=topics.relationship_events,
        batch_size=settings.relay_batch_size,
        idle_seconds=settings.relay_idle_seconds,
    )
