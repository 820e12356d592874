"""The composition root: every command and service builds its parts here, from one
``Settings`` (whose store URL is parsed once, when the settings are made).

``Components(settings)`` builds the write side (the application, the key store), the
audit ledger, the Kafka edge (consumer, relay) and the read side (views of the read
models, and what the HTTP API serves from, which writes too: touchpoints over HTTP and
account managers go through the application as every other writer's do). Nothing is
opened until asked for, and whoever asks closes it. It is also the read side's
``projections.wiring.Wiring``: it pickles (it holds only the settings), so a rebuild's
worker processes build their own parts from it. Each part's modules are imported when
the part is asked for, so that a command loads only what it uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from projections.shards import WHOLE_LOG, Shard

if TYPE_CHECKING:
    from eventsourcing.persistence import InfrastructureFactory, TrackingRecorder

    from consumers.broker import Topics
    from consumers.ingest import TouchpointIngest
    from consumers.redrive_log import RedriveLog
    from consumers.relay import Relay
    from lifecycle.audit.ledger import AuditKey, AuditLedger
    from lifecycle.audit.sealing import PeriodicSealer
    from lifecycle.domain.policy import PolicyText
    from lifecycle.persistence.personal import KeyStore, PersonalDataVault
    from lifecycle.service.application import LifecycleApplication
    from lifecycle.settings import Settings
    from projections.api.app import ReadSide
    from projections.predictions import PredictionsView
    from projections.readmodel import ReadModel
    from projections.views import SqlView

LEDGER_NAME = "lifecycle_audit"
SHARDS_WAIT_SECONDS = 600
"""How long a shard of a rebuild waits for another shard's write transaction (SQLite)."""


@dataclass(frozen=True)
class Components:
    """Builds every component from ``settings``; see the module docstring."""

    settings: Settings

    # Write side ---------------------------------------------------------------------

    def policy_file(self) -> PolicyText | None:
        """``LIFECYCLE_POLICY_FILE``, read and validated (None: unset). It is the first
        adoption of a store without a policy; a recording process started with any other
        than the adopted policy refuses to start."""
        from lifecycle.domain.policy import PolicyText

        if self.settings.policy_file is None:
            return None
        return PolicyText.read(self.settings.policy_file)

    def application_env(self) -> dict[str, str]:
        return {
            **self.settings.store.persistence_env(),
            # The write side caches aggregates between batches without re-reading them
            # (no fast-forward): a concurrent writer is caught as a version conflict and
            # the batch retried, so the cache is an optimisation, never a source of truth.
            "AGGREGATE_CACHE_MAXSIZE": str(self.settings.aggregate_cache_size),
            "AGGREGATE_CACHE_FASTFORWARD": "n",
            "DEEPCOPY_FROM_AGGREGATE_CACHE": "n",
        }

    def application(self) -> LifecycleApplication:
        from lifecycle.service.application import LifecycleApplication

        return LifecycleApplication(
            env=self.application_env(),
            policy_file=self.policy_file(),
            snapshot_interval=self.settings.snapshot_interval,
            vault=self.vault(),
        )

    def log_reader(self) -> LifecycleApplication:
        """The application, to read its event log only (a rebuild's worker processes):
        its tables are not created (the process that started them made sure they exist,
        and concurrent DDL fails on PostgreSQL) and no key store is opened."""
        from lifecycle.service.application import LifecycleApplication

        return LifecycleApplication(env={**self.application_env(), "CREATE_TABLE": "n"})

    def key_store(self) -> KeyStore:
        """Per-customer keys: lifecycle.keys.db beside a SQLite database; a table on
        PostgreSQL."""
        store = self.settings.store
        if store.is_sqlite:
            from lifecycle.persistence.personal import SQLiteKeyStore

            return SQLiteKeyStore(store.sibling_path("keys"))
        from eventsourcing.postgres import PostgresFactory
        from eventsourcing.utils import Environment

        from lifecycle.persistence.personal import PostgresKeyStore

        env = Environment("lifecycle_keys", {**store.persistence_env(), "POSTGRES_POOL_SIZE": "2"})
        return PostgresKeyStore(PostgresFactory(env).datastore, store.conninfo)

    def vault(self) -> PersonalDataVault:
        from lifecycle.persistence.personal import PersonalDataVault

        return PersonalDataVault(self.key_store())

    # Audit ----------------------------------------------------------------------------

    def ledger(self) -> AuditLedger:
        """The audit ledger of this store: lifecycle.audit.db beside a SQLite database,
        lifecycle_audit_* tables on PostgreSQL."""
        from eventsourcing.utils import Environment

        from lifecycle.audit.ledger import PostgresAuditLedger, SQLiteAuditLedger

        store = self.settings.store
        env = Environment(
            LEDGER_NAME, {**store.persistence_env("audit"), "POSTGRES_POOL_SIZE": "2"}
        )
        if store.is_sqlite:
            from eventsourcing.sqlite import SQLiteFactory

            return cast("AuditLedger", SQLiteFactory(env).tracking_recorder(SQLiteAuditLedger))
        from eventsourcing.postgres import PostgresFactory

        return PostgresFactory(env).tracking_recorder(PostgresAuditLedger)

    def audit_key(self, *, required: bool = True) -> AuditKey | None:
        """The HMAC key from settings; ``AuditKeyMissing`` when required and unset."""
        from lifecycle.audit.ledger import AuditKey, AuditKeyMissing

        if self.settings.audit_hmac_key is None:
            if required:
                raise AuditKeyMissing(
                    "LIFECYCLE_AUDIT_HMAC_KEY is not set: the audit ledger is signed with a "
                    "key kept outside the database (at least 16 characters)"
                )
            return None
        return AuditKey(self.settings.audit_hmac_key.get_secret_value().encode())

    def sealer(self, app: LifecycleApplication) -> PeriodicSealer:
        """The sealer ``lifecycle run`` runs: every ``audit_seal_interval_seconds``, with
        its own ledger connection (closed by ``PeriodicSealer.close``)."""
        from lifecycle.audit.sealing import PeriodicSealer

        key = self.audit_key()
        assert key is not None
        return PeriodicSealer(
            app, self.ledger(), key, interval=self.settings.audit_seal_interval_seconds
        )

    # Kafka edge -------------------------------------------------------------------------

    def topics(self) -> Topics:
        from consumers.broker import Topics

        return Topics.from_settings(self.settings)

    def ingest(
        self,
        app: LifecycleApplication,
        *,
        bootstrap: str | None = None,
        topics: Topics | None = None,
        group_id: str | None = None,
    ) -> TouchpointIngest:
        """The touchpoint consumer; ``open(stop)`` or ``run(stop)`` it."""
        from consumers.ingest import TouchpointIngest

        topics = topics or self.topics()
        return TouchpointIngest(
            app,
            bootstrap=bootstrap or self.settings.bootstrap_servers,
            topic=topics.touchpoints,
            group_id=group_id or self.settings.kafka_consumer_group,
            dead_letter_topic=topics.dead_letters,
            rules=self.settings.message_rules,
            max_records=self.settings.kafka_max_poll_records,
        )

    def redrive_log(self, *, read_only: bool = False) -> RedriveLog:
        """What the dead-letter re-drive remembers: lifecycle.redrives.db beside a SQLite
        store, a table on PostgreSQL; ``read_only`` creates nothing. Close it when done."""
        from consumers.redrive_log import PostgresRedriveLog, SQLiteRedriveLog

        store = self.settings.store
        if store.is_sqlite:
            return SQLiteRedriveLog(store.sibling_path("redrives"), read_only=read_only)
        from eventsourcing.postgres import PostgresFactory
        from eventsourcing.utils import Environment

        env = Environment(
            "lifecycle_redrives", {**store.persistence_env(), "POSTGRES_POOL_SIZE": "1"}
        )
        return PostgresRedriveLog(PostgresFactory(env).datastore, read_only=read_only)

    def relay_tracking(self) -> InfrastructureFactory[TrackingRecorder]:
        """Where the relay stores its position: lifecycle.relay.db beside a SQLite
        store, the ``lifecyclerelay_tracking`` table on PostgreSQL. Close it after the
        relay."""
        from eventsourcing.persistence import InfrastructureFactory
        from eventsourcing.utils import Environment

        env = Environment("LifecycleRelay", self.settings.store.persistence_env("relay"))
        factory: InfrastructureFactory[TrackingRecorder] = InfrastructureFactory.construct(env)
        return factory

    def relay(
        self,
        app: LifecycleApplication,
        tracking: TrackingRecorder,
        *,
        bootstrap: str | None = None,
        topics: Topics | None = None,
    ) -> Relay:
        """The outbound relay; ``open(stop)`` or ``run(stop)`` it."""
        from consumers.relay import Relay

        topics = topics or self.topics()
        return Relay(
            app,
            tracking,
            bootstrap=bootstrap or self.settings.bootstrap_servers,
            topic=topics.relationship_events,
            batch_size=self.settings.relay_batch_size,
            idle_seconds=self.settings.relay_idle_seconds,
            schema_version=self.settings.relay_schema_version,
        )

    # Read side --------------------------------------------------------------------------

    def view_env(self, name: str) -> dict[str, str]:
        """eventsourcing's environment for the view of read model ``name``: on SQLite its
        own file beside the main one (``lifecycle.<name>.db``), on PostgreSQL the shared
        database."""
        return {
            **self.settings.store.persistence_env(name),
            # Tables are created by the view once its generation is chosen.
            "CREATE_TABLE": "n",
            "POSTGRES_POOL_SIZE": str(self.settings.projection_pool_size),
        }

    def open_view(
        self, model: type[ReadModel[Any]], generation: str = "", shard: Shard = WHOLE_LOG
    ) -> SqlView:
        """The view of ``model`` (its tables created if missing), on the configured store;
        ``generation`` "" is the live tables (``projections.views.LIVE``); in the next
        generation, of one ``shard`` of a rebuild."""
        return self._open_view(model.name, model.view_classes, generation, shard)

    def predictions_view(self) -> PredictionsView:
        """Where the analytics models' predictions are kept (Contract 8): a view beside
        the read models' (``lifecycle.predictions.db`` beside a SQLite store)."""
        from projections.predictions import Predictions

        view = self._open_view(Predictions.name, Predictions.view_classes)
        return cast("PredictionsView", view)

    def _open_view(
        self,
        name: str,
        view_classes: dict[str, type[SqlView]],
        generation: str = "",
        shard: Shard = WHOLE_LOG,
    ) -> SqlView:
        from eventsourcing.persistence import InfrastructureFactory
        from eventsourcing.utils import Environment

        from projections.views import SqlView

        env = {**os.environ, **self.view_env(name)}
        if not shard.is_whole_log:
            # The shards of a rebuild take turns writing the same tables: wait for each other.
            env["SQLITE_LOCK_TIMEOUT"] = str(SHARDS_WAIT_SECONDS)
        factory = InfrastructureFactory.construct(Environment(name, env))
        backend = "sqlite" if self.settings.store.is_sqlite else "postgres"
        view = cast(SqlView, factory.tracking_recorder(view_classes[backend]))
        view.use_generation(generation, shard)
        view.create_table()
        return view

    def read_side(self) -> ReadSide:
        """What the HTTP API serves from, closed together: the views of every read model,
        the analytics predictions (which the summary's reads join in), the audit ledger
        (how far the log is sealed and verified), and the application.

        The application writes: ``POST /v1/touchpoints`` records through its batch path
        (``record_batch``) and ``PUT …/account-manager`` through its commands, under the
        policy and settings of every other writer, beside Kafka consumers writing the
        same customers (a version conflict is retried from freshly read relationships).
        Its key store is opened, so that personal data arriving over HTTP is encrypted
        as it is from Kafka, and the console can show it to auditors. The console's
        dead-letters page reads and re-drives the dead-letter topic through the desk of
        ``lifecycle dead-letters``, when asked (nothing connects to Kafka before)."""
        from consumers.metrics import REGISTRY as KAFKA_EDGE_REGISTRY
        from lifecycle.entrypoints.dead_letters import DeadLetterDesk
        from projections.api.app import ReadSide
        from projections.predictions import Predictions
        from projections.summary import Summary, SummaryView
        from projections.wiring import close_view, open_views

        views = open_views(self, None)
        predictions = self.predictions_view()
        summary = cast(SummaryView, views[Summary.name])
        summary.join_predictions(summary.reach(predictions, Predictions.TABLE))
        application = self.application()
        ledger = self.ledger()

        def close() -> None:
            for view in (*views.values(), predictions):
                close_view(view)
            ledger.close()
            application.close()

        return ReadSide(
            settings=self.settings,
            views=views,
            predictions=predictions,
            application=application,
            close=close,
            # The Kafka edge keeps its counters in a registry of its own.
            metrics_registries=(KAFKA_EDGE_REGISTRY,),
            ledger=ledger,
            audit_key=self.audit_key(required=False),
            dead_letters=DeadLetterDesk(self.settings),
        )
