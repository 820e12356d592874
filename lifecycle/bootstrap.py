"""The composition root: every command and service builds its parts here, from settings."""

from __future__ import annotations

from lifecycle.application import LifecycleApplication
from lifecycle.personal import KeyStore, PersonalDataVault, PostgresKeyStore, SQLiteKeyStore
from lifecycle.policy import Policy
from lifecycle.settings import Settings
from lifecycle.store import Store


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
