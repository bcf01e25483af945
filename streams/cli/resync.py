"""`erpbridge resync ORDER_ID...`: an order's ERP commands and journal entries re-sent from its
state."""

from __future__ import annotations

import click

from streams.cli.app import confirm, connect, counted, main
from streams.contracts.changelogs import ORDERS_TABLE, changelog_topic
from streams.contracts.codec import codec_from_settings
from streams.contracts.journal import encode_entry, entry_key
from streams.contracts.topics import ERP_PENDING, JOURNAL, ORDERS, TopicCatalog
from streams.domain.commands import Command
from streams.domain.finance import (
    FinanceMapping,
    FinanceMappingError,
    JournalEntry,
    MissingRateError,
)
from streams.domain.followups import follow_ups
from streams.domain.orders import Order
from streams.domain.statecodec import decode_order
from streams.ops.records import Outgoing, PartitionReader, Record, RecordsError, Sender
from streams.topology.agents.intake import partition_for
from streams.topology.app import command_policy_of


@main.command("resync")
@click.argument("order_ids", nargs=-1, required=True, metavar="ORDER_ID...")
@click.option("--dry-run", is_flag=True, help="List what would be re-sent; send nothing.")
@click.pass_context
def resync(ctx: click.Context, order_ids: tuple[str, ...], dry_run: bool) -> None:
    """Re-send each order's ERP commands and journal entries, computed from its state, to
    the ERP.

    The order's latest state is read from the orders table's changelog
    (`<ERPBRIDGE_APP_ID>-orders-changelog`); every command its facts call for (sales
    order, cancellation, shipments, credit notes) goes to internal.erp-pending, and each
    of its journal entries to finance.journal, under the ids the topology gave them and
    encoded as the topology sends them. The rate-limited dispatcher sends them on to the
    ERP (each entry as a PostJournalEntry), and the ERP connector, which looks each
    document up by its id before creating it, creates only what is missing. Readers of
    finance.journal get the entries again, identical, as after a redelivery. Use it when
    the ERP lost or never got documents.

    Prints per order the commands and entries re-sent. Refuses, sending nothing, an order
    id with no state (exit 1).

    \b
    Examples:
      erpbridge resync 450789469
      erpbridge resync 450789469 450789470 --dry-run
    """
    settings = connect(ctx)
    catalog = TopicCatalog.from_settings(settings)
    changelog = changelog_topic(settings.app_id, ORDERS_TABLE)
    pending = catalog.physical(ERP_PENDING)
    journal = catalog.physical(JOURNAL)
    policy = command_policy_of(settings)
    try:
        mapping = FinanceMapping.from_file(settings.finance_mapping)
        with PartitionReader(settings.confluent_config()) as reader:
            states = _latest_states(reader, changelog, catalog.partitions(ORDERS), order_ids)
    except (RecordsError, FinanceMappingError) as error:
        raise click.ClickException(str(error)) from None
    missing = [o for o in order_ids if o not in states]
    if missing:
        raise click.ClickException(
            f"no state for order {', '.join(missing)} in {changelog}: the topology never "
            f"processed an event of it, or ERPBRIDGE_APP_ID ({settings.app_id}) is not the "
            "worker's; nothing re-sent"
        )
    plans: list[tuple[Order, list[Command], list[JournalEntry]]] = []
    for order_id in dict.fromkeys(order_ids):
        order = decode_order(states[order_id])
        try:
            handed_on = follow_ups(order, policy, mapping, replay=True)
        except MissingRateError as error:
            raise click.ClickException(f"order {order_id}: {error}; nothing re-sent") from None
        plans.append((order, handed_on.commands, handed_on.entries))

    codec = codec_from_settings(settings)
    sender = None if dry_run else Sender(settings.producer_config())
    verb = "would re-send" if dry_run else "re-sent"
    for order, commands, entries in plans:
        status = order.status.value if order.status is not None else "not placed"
        if not commands and not entries:
            click.echo(
                f"order {order.order_id} ({status}): no ERP command is due; nothing to re-send"
            )
            continue
        where = [f"{counted(len(commands), 'command')} to {pending}"] if commands else []
        if entries:
            where.append(f"{_entries(len(entries))} to {journal}")
        click.echo(f"order {order.order_id} ({status}): {verb} {' and '.join(where)}")
        width = max(
            len(i) for i in [c.command_id for c in commands] + [e.entry_id for e in entries]
        )
        # Each as the topology's outputs send it: a command keyed for the dispatcher's
        # coalescing, an entry as the topology encodes it, keyed by its id.
        for command in commands:
            click.echo(f"  {command.command_id:<{width}}  {command.kind.value}")
            if sender is not None:
                key = command.dispatch_key.encode()
                sender.send(Outgoing(pending, None, key, command.encode(), (), command.command_id))
        for entry in entries:
            click.echo(f"  {entry.entry_id:<{width}}  journal entry")
            if sender is not None:
                value = encode_entry(codec, entry, topic=journal)
                sender.send(Outgoing(journal, None, entry_key(entry), value, (), entry.entry_id))
    total = _total(sum(len(c) for _, c, _ in plans), sum(len(e) for _, _, e in plans))
    if sender is None:
        click.echo(f"dry run: {total} would be re-sent; nothing sent")
        return
    confirm(sender, "record", f"{pending} or {journal}")
    click.echo(
        f"re-sent {total} in all; the ERP connector creates only the documents the ERP does "
        "not have"
    )


def _entries(number: int) -> str:
    return counted(number, "journal entry", "journal entries")


def _total(commands: int, entries: int) -> str:
    """`3 commands and 2 journal entries`, leaving out a kind there is none of."""
    parts = [counted(commands, "command")] if commands else []
    if entries:
        parts.append(_entries(entries))
    return " and ".join(parts) or counted(0, "command")


def _latest_states(
    reader: PartitionReader, changelog: str, partitions: int, order_ids: tuple[str, ...]
) -> dict[str, bytes]:
    """Each order's stored state: the last record of its key on its partition (the
    topology's, murmur2 of the order id); orders without one, or deleted, are left out."""
    try:
        reader.partitions(changelog)
    except RecordsError:
        raise RecordsError(
            f"the orders table's changelog {changelog} does not exist: is ERPBRIDGE_APP_ID "
            "the worker's, and has a worker run?"
        ) from None
    by_partition: dict[int, list[bytes]] = {}
    for order_id in order_ids:
        key = order_id.encode()
        by_partition.setdefault(partition_for(key, partitions), []).append(key)
    found: dict[bytes, Record] = {}
    for partition, keys in by_partition.items():
        found.update(reader.latest(changelog, partition, keys))
    return {key.decode(): record.value for key, record in found.items() if record.value is not None}
