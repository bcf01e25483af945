"""erp.commands in, erp.results and erp.commands.dlq out, on the session broker.

Commands come from the reference model over a small sample, so they are the ones the
topology really sends; each test takes its own sample seed, which makes its order, event
and entry ids (and so its ERP documents) its own in the shared ERP.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer

from streams.contracts import deadletter
from streams.contracts.codec import Codec
from streams.contracts.topics import ERP_COMMANDS, ERP_RESULTS, TopicCatalog, dead_letter_of
from streams.domain.accounts import upsert_command
from streams.domain.commands import Command, CommandPolicy
from streams.domain.finance import entry_command
from streams.ops.settings import Settings
from streams.sample.generator import Catalogue, generate
from tests.streams.domain.builders import account
from tests.streams.topology.agents.pipeline import read_all, run_model
from tests.support import STORE, wait_for

CODEC = Codec(STORE)


def sample_commands(seed: int, orders: int) -> list[Command]:
    """Every command the topology issues for a sample, in the order their facts happened."""
    events = generate(seed, orders, Catalogue.default(), datetime.now(UTC))
    settings = Settings(kafka_bootstrap_servers="unused:9092")
    model = run_model(events, settings, CODEC)
    journal = [entry_command(e, settings.erp_target) for e in model.journal.values()]
    return sorted([*model.commands.values(), *journal], key=lambda c: (c.created_ms, c.command_id))


def account_command(account_id: str) -> Command:
    """The UpsertCustomer of a new storefront account (`account_id` unique to the test)."""
    return upsert_command(account(account_id), CommandPolicy())


def encode(command: Command, topics: TopicCatalog) -> bytes:
    topic = topics.physical(ERP_COMMANDS)
    return CODEC.encode("erpbridge.ErpCommand", command.to_datum(), topic=topic)


def publish(
    settings: Settings, topics: TopicCatalog, records: list[Command | tuple[str, bytes]]
) -> None:
    """Commands (or raw key/value pairs) onto erp.commands, keyed by command id."""
    producer = Producer(settings.producer_config())
    for record in records:
        key, value = (
            (record.command_id, encode(record, topics)) if isinstance(record, Command) else record
        )
        producer.produce(topics.physical(ERP_COMMANDS), key=key.encode(), value=value)
    assert producer.flush(30) == 0


def results(settings: Settings, topics: TopicCatalog) -> dict[str, list[dict[str, Any]]]:
    """Every erp.results datum so far, by command id, in the order each partition holds them."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in read_all(settings, topics.physical(ERP_RESULTS)):
        datum = CODEC.decode(message.value(), expected="erpbridge.ErpResult").datum
        found[datum["command_id"]].append(datum)
    return found


def wait_results(
    settings: Settings,
    topics: TopicCatalog,
    command_ids: list[str],
    *,
    each: int = 1,
    timeout: float = 180,
) -> dict[str, list[dict[str, Any]]]:
    """Wait until every command has `each` results; all results so far."""

    def arrived() -> dict[str, list[dict[str, Any]]] | None:
        found = results(settings, topics)
        return found if all(len(found.get(c, ())) >= each for c in command_ids) else None

    answered: dict[str, list[dict[str, Any]]] = wait_for(
        arrived, timeout=timeout, what=f"{each} result(s) for each of {len(command_ids)} commands"
    )
    return answered


@dataclass(frozen=True)
class DeadLetter:
    key: str
    value: bytes
    reason: str
    error: str


def dead_letters(settings: Settings, topics: TopicCatalog) -> list[DeadLetter]:
    letters = []
    for message in read_all(settings, topics.physical(dead_letter_of(ERP_COMMANDS))):
        headers = deadletter.describe(message.headers() or [])
        letters.append(
            DeadLetter(
                (message.key() or b"").decode(),
                message.value() or b"",
                headers[deadletter.REASON],
                headers[deadletter.ERROR],
            )
        )
    return letters
