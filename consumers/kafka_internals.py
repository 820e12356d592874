"""The one door to private APIs of kafka-python (pinned at 3.0.12).

``KafkaConsumer`` has no public accessor for the topic ids of its cluster metadata
(KIP-516) nor for the state of its broker connections; both live on its network client,
``consumer._client`` (``cluster.topic_id(topic)``, ``cluster.brokers()``,
``connected(node_id)``). ``bootstrap_connected()``, the nearest public call, tells
whether a bootstrap is in progress, not whether a broker answers. Each function degrades
to "unknown" when the private path is gone, and ``tests/unit/test_library_contracts.py``
and ``tests/integration/test_library_contracts.py`` pin it, so that an upgrade that
moves it fails there rather than quietly turning the checks off.
"""

from __future__ import annotations

from kafka import KafkaConsumer


def topic_id(consumer: KafkaConsumer, topic: str) -> str | None:
    """The broker's id of ``topic`` (KIP-516), or None when it does not report one."""
    try:
        value = consumer._client.cluster.topic_id(topic)
    except AttributeError:
        return None
    return str(value) if value is not None else None


def broker_reachable(consumer: KafkaConsumer) -> bool:
    """Whether the consumer holds a live connection to at least one broker."""
    try:
        client = consumer._client
        nodes = [broker.node_id for broker in client.cluster.brokers()]
        return any(client.connected(node) for node in nodes)
    except AttributeError:
        return True
