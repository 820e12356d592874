"""The dead-letter topic as people work with it: what `lifecycle dead-letters` and the
console's dead-letters page list and re-drive (Contract 6), through the Kafka edge's
functions (``consumers.dead_letters``), naming the cluster when it cannot be reached.

``list`` reads the topic from its beginning and changes nothing; ``redrive`` publishes
the chosen letters to the touchpoint topic again, each message once unless ``again``,
and remembers them (``Components.redrive_log``)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from lifecycle.domain.errors import LifecycleError
from lifecycle.entrypoints.bootstrap import Components
from lifecycle.settings import Settings

if TYPE_CHECKING:
    from consumers.dead_letters import RedriveReport, StoredDeadLetter

T = TypeVar("T")


class NoSuchDeadLetter(LifecycleError):
    code = "no_such_dead_letter"


@dataclass(frozen=True)
class DeadLetterDesk:
    settings: Settings

    @property
    def topic(self) -> str:
        return Components(self.settings).topics().dead_letters

    def letters(self, *, code: str | None = None) -> list[StoredDeadLetter]:
        """The dead letters on the topic (with error ``code``), in offset order."""
        from consumers.clients import new_consumer
        from consumers.dead_letters import choose, read_dead_letters

        bootstrap = self.settings.bootstrap_servers
        consumer = self._connected(lambda: new_consumer(bootstrap, "lifecycle-dead-letters"))
        try:
            return choose(read_dead_letters(consumer, self.topic), code=code)
        finally:
            consumer.close()

    def listed(self, *, code: str | None = None) -> list[dict[str, Any]]:
        """Each dead letter (with error ``code``) as ``lifecycle dead-letters list --json``
        shows it: offset, time, key, error code and reason, source, redrive count."""
        letters = self.letters(code=code)
        memory = Components(self.settings).redrive_log(read_only=True)
        try:
            counts = memory.counts({letter.identity for letter in letters})
        finally:
            memory.close()
        return [letter.as_dict(counts.get(letter.identity, 0)) for letter in letters]

    def redrive(
        self, *, code: str | None = None, offsets: Collection[int] = (), again: bool = False
    ) -> RedriveReport:
        """Publish the dead letters with error ``code`` at ``offsets`` (any, when not
        given) to the touchpoint topic again; ``NoSuchDeadLetter`` names an offset that
        holds none."""
        from consumers.clients import new_producer
        from consumers.dead_letters import choose, redrive

        letters = choose(self.letters(code=code), offsets=offsets)
        missing = sorted(set(offsets) - {letter.offset for letter in letters})
        if missing:
            raise NoSuchDeadLetter(
                f"no dead letter{'s' if len(missing) > 1 else ''} at offset "
                f"{', '.join(map(str, missing))} on {self.topic}"
                + (f" with code {code}" if code else "")
            )
        bootstrap = self.settings.bootstrap_servers
        producer = self._connected(lambda: new_producer(bootstrap, "lifecycle-redrive"))
        memory = Components(self.settings).redrive_log()
        touchpoints = Components(self.settings).topics().touchpoints
        try:
            return redrive(letters, producer, touchpoints, memory, again=again)
        finally:
            memory.close()
            producer.close()

    def _connected(self, connect: Callable[[], T]) -> T:
        """A Kafka client, or ``BrokerError`` naming the cluster it could not reach."""
        from consumers.broker import BrokerError
        from consumers.faults import is_broker_fault

        try:
            return connect()
        except Exception as error:
            if is_broker_fault(error):
                raise BrokerError(
                    f"cannot reach Kafka at {self.settings.bootstrap_servers}: {error}"
                ) from None
            raise
