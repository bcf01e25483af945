"""`erpbridge resync` on the real broker: a real worker takes an order to a sales order, then
resync re-sends its commands to internal.erp-pending and its journal entries to
finance.journal under the same ids, as the topology did (the entries byte for byte)."""

from __future__ import annotations

from collections.abc import Callable

from streams.contracts.changelogs import ORDERS_TABLE, changelog_topic
from streams.contracts.codec import Codec
from streams.contracts.topics import ERP_PENDING, JOURNAL, TopicCatalog
from streams.domain.commands import Command, Kind, sales_order_id
from streams.ops.settings import Settings
from streams.sample.generator import DEFAULT_START, Catalogue, generate
from tests.streams.topology.agents.pipeline import TopologyState, produce, quiesce, read_all
from tests.support import STORE, WorkerProcess, run

CODEC = Codec(STORE)
_COST_ENTRIES = ("/journal/cogs/", "/journal/restock/")
"""Cost of goods is booked by the stock agent from its unit costs, not from the order's
state, so resync does not re-send it."""


def pending(settings: Settings, topics: TopicCatalog) -> list[tuple[int, int, Command]]:
    """Every command on the pending topic: partition, offset, command."""
    return sorted(
        (m.partition(), m.offset(), Command.decode(m.value()))
        for m in read_all(settings, topics.physical(ERP_PENDING))
    )


def journal(settings: Settings, topics: TopicCatalog) -> list[tuple[int, int, bytes, str | None]]:
    """Every record on finance.journal: partition, offset, value, its entry's order id."""
    return sorted(
        (m.partition(), m.offset(), m.value(), CODEC.decode(m.value()).datum["order_id"])
        for m in read_all(settings, topics.physical(JOURNAL))
    )


def entry_id(value: bytes) -> str:
    entry: str = CODEC.decode(value).datum["entry_id"]
    return entry


def test_resync_resends_an_orders_commands_under_the_same_ids(
    settings: Settings,
    topics: TopicCatalog,
    cli_env: dict[str, str | None],
    start_worker: Callable[[], WorkerProcess],
) -> None:
    produce(settings, topics, CODEC, generate(7, 6, Catalogue.default(), DEFAULT_START))
    start_worker()
    quiesce(settings, topics)
    state = TopologyState.read(settings, topics, CODEC)
    before = pending(settings, topics)
    # The topology puts journal entries on finance.journal only, not on the pending topic.
    assert not [c for _, _, c in before if c.kind is Kind.POST_JOURNAL_ENTRY]
    journal_before = journal(settings, topics)

    def issued_by(order_id: str) -> dict[str, tuple[int, Command]]:
        return {
            command.command_id: (partition, command)
            for partition, _, command in before
            if command.dispatch_key == order_id
        }

    def entries_of(order_id: str) -> dict[str, tuple[int, bytes]]:
        return {
            entry_id(value): (partition, value)
            for partition, _, value, entry_order in journal_before
            if entry_order == order_id
            and not any(cost in entry_id(value) for cost in _COST_ENTRIES)
        }

    # The first order with a sales order, another command and journal entries of its own.
    order_id = next(
        o
        for o in sorted(state.orders)
        if sales_order_id(o) in state.commands and len(issued_by(o)) > 1 and entries_of(o)
    )
    issued, entries = issued_by(order_id), entries_of(order_id)
    said = f"{len(entries)} journal entr{'y' if len(entries) == 1 else 'ies'}"

    result = run(["resync", order_id], cli_env)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"order {order_id} ({state.orders[order_id].status.value}): re-sent {len(issued)} "
        f"commands to {topics.physical(ERP_PENDING)} and {said} to {topics.physical(JOURNAL)}"
    )
    assert sorted(line.split()[0] for line in lines[1:-1]) == sorted([*issued, *entries])
    assert lines[-1] == (
        f"re-sent {len(issued)} commands and {said} in all; the ERP connector creates only "
        "the documents the ERP does not have"
    )
    ends = {partition: offset for partition, offset, _ in before}
    resent = {
        command.command_id: (partition, command)
        for partition, offset, command in pending(settings, topics)
        if offset > ends.get(partition, -1)
    }
    # Same ids, same contents, same partitions: the dispatcher and the ERP see the same commands.
    assert resent == issued
    assert sales_order_id(order_id) in resent
    journal_ends = {partition: offset for partition, offset, _, _ in journal_before}
    resent_entries = {
        entry_id(value): (partition, value)
        for partition, offset, value, _ in journal(settings, topics)
        if offset > journal_ends.get(partition, -1)
    }
    # The same bytes on the same partitions: the dispatcher posts the same entries.
    assert resent_entries == entries

    mixed = run(["resync", order_id, "no-such-order"], cli_env)

    assert mixed.exit_code == 1
    assert "no state for order no-such-order" in mixed.stderr
    assert len(pending(settings, topics)) == len(before) + len(issued)
    assert len(journal(settings, topics)) == len(journal_before) + len(entries)


def test_resync_refuses_an_order_without_state(
    settings: Settings, topics: TopicCatalog, cli_env: dict[str, str | None]
) -> None:
    changelog = changelog_topic(settings.app_id, ORDERS_TABLE)

    result = run(["resync", "no-such-order", "nor-this-one"], cli_env)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: no state for order no-such-order, nor-this-one in {changelog}: the topology "
        f"never processed an event of it, or ERPBRIDGE_APP_ID ({settings.app_id}) is not the "
        "worker's; nothing re-sent\n"
    )
    assert read_all(settings, topics.physical(ERP_PENDING)) == []
    assert read_all(settings, topics.physical(JOURNAL)) == []


def test_resync_refuses_an_app_id_whose_changelog_does_not_exist(
    settings: Settings, topics: TopicCatalog, cli_env: dict[str, str | None]
) -> None:
    result = run(["resync", "450789469"], {**cli_env, "ERPBRIDGE_APP_ID": "not-the-app"})

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: the orders table's changelog not-the-app-orders-changelog does not exist: is "
        "ERPBRIDGE_APP_ID the worker's, and has a worker run?\n"
    )
