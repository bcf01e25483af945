"""The gate every input record passes: decode it and check it is where it belongs, or
dead-letter it with the reason. What passes is an InputEvent for the business rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiokafka.partitioner import murmur2
from faust.types import Message

from streams.contracts.codec import Codec, DecodeError
from streams.contracts.topics import AGENT_SOURCES, TopicCatalog, spec
from streams.domain.events import InputEvent
from streams.topology.accounting import EventAccounting, Outcome
from streams.topology.agents.batch import Batch
from streams.topology.agents.deadletters import DeadLetters, source_of

T = TypeVar("T")


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Java clients, aiokafka and Faust choose for a key (murmur2)."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


class Intake:
    def __init__(
        self,
        catalog: TopicCatalog,
        codec: Codec,
        accounting: EventAccounting,
        dead_letters: DeadLetters,
    ) -> None:
        self._catalog = catalog
        self._codec = codec
        self._accounting = accounting
        self._dead_letters = dead_letters
        self._partitions = {name: catalog.partitions(name) for name in AGENT_SOURCES}

    def admit(self, batch: Batch, name: str, message: Message) -> InputEvent | None:
        """The event of a record from input topic `name`, or None once it is dead-lettered."""
        self._accounting.consumed(name)
        topic_spec = spec(name)
        try:
            decoded = self._codec.decode(message.value, expected=topic_spec.value_schema)
        except DecodeError as error:
            self.reject(batch, name, message, "decode", error.reason, str(error))
            return None
        key_field = topic_spec.key
        expected_key = str(decoded.datum[key_field]).encode()
        if message.key != expected_key:
            self.reject(
                batch,
                name,
                message,
                "route",
                "key-mismatch",
                f"record key {message.key!r} is not the value's {key_field} {expected_key!r}",
            )
            return None
        partitions = self._partitions[name]
        expected = partition_for(expected_key, partitions)
        if message.partition != expected:
            self.reject(
                batch,
                name,
                message,
                "route",
                "wrong-partition",
                f"key {expected_key!r} belongs on partition {expected} of {partitions} "
                f"(murmur2, the Java client default), not {message.partition}: the producer "
                "must use the murmur2 partitioner (librdkafka: partitioner=murmur2_random)",
            )
            return None
        return InputEvent.from_datum(decoded.datum, key_field)

    def admit_datum(self, batch: Batch, name: str, message: Message) -> dict[str, Any] | None:
        """The datum of a record a connector wrote on `name` (erp.results,
        storefront.results), or None once it is dead-lettered."""
        self._accounting.consumed(name)
        try:
            datum: dict[str, Any] = self._codec.decode(
                message.value, expected=spec(name).value_schema
            ).datum
        except DecodeError as error:
            self.reject(batch, name, message, "decode", error.reason, str(error))
            return None
        return datum

    def admit_internal(
        self, batch: Batch, name: str, message: Message, decode: Callable[[bytes], T]
    ) -> T | None:
        """A message of internal topic `name`, or None once it is dead-lettered.

        Only erpbridge writes internal topics, so a record that does not decode is a bug;
        it is kept for inspection instead of stopping the partition.
        """
        try:
            return decode(message.value or b"")
        except (ValueError, KeyError, TypeError) as exc:
            self._accounting.consumed(name)
            self.reject(batch, name, message, "decode", "corrupt", repr(exc))
            return None

    def reject(
        self, batch: Batch, name: str, message: Message, stage: str, reason: str, error: str
    ) -> None:
        self._dead_letters.send(batch, name, source_of(message), stage, reason, error)
        self._accounting.outcome(name, Outcome.DEAD_LETTERED, reason)
