"""`erpbridge dlq list|replay TOPIC`: dead letters shown, and sent back once the cause is fixed."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import click
import httpx

from connectors.webhooks.intake import Intake
from connectors.webhooks.replay import Replay, replays
from connectors.webhooks.routes import routes_of
from streams.cli.app import LogicalTopic, confirm, connect, counted, main
from streams.contracts import deadletter
from streams.contracts.codec import codec_from_settings
from streams.contracts.topics import (
    ERP_CATALOG,
    ERP_COMMANDS,
    ERP_CUSTOMERS,
    ERP_PENDING,
    INPUTS,
    JOURNAL,
    STOREFRONT_FULFILMENTS,
    WEBHOOKS,
    TopicCatalog,
    dead_letter_of,
    spec,
)
from streams.ops.dlq import StoredDeadLetter, choose, read_dead_letters
from streams.ops.records import Outgoing, PartitionReader, RecordsError, Sender
from streams.ops.settings import Settings

_SOURCES = LogicalTopic(
    (
        *INPUTS,
        ERP_PENDING,
        JOURNAL,
        ERP_COMMANDS,
        STOREFRONT_FULFILMENTS,
        ERP_CATALOG,
        ERP_CUSTOMERS,
        WEBHOOKS,
    ),
    "{topic} is none of the topics whose dead letters this works on: an input topic, the "
    "dispatcher's internal.erp-pending and finance.journal, erp.commands, the storefront "
    "sink's storefront.fulfilments, erp.catalog and erp.customers, or webhooks",
)
_COLUMNS = ("partition", "offset", "source offset", "reason", "failed at", "key", "error")
_WEBHOOK_COLUMNS = ("partition", "offset", "route", "reason", "failed at", "key", "error")
_API_TIMEOUT_SECONDS = 30.0
"""For what a webhook's mapping reads from the provider's API (a Stripe payout's
transactions)."""


class _PartitionOffset(click.ParamType):
    name = "P:O"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        partition, sep, offset = str(value).partition(":")
        if not (sep and partition.isdigit() and offset.isdigit()):
            self.fail(f"{value!r} is not PARTITION:OFFSET, such as 0:17", param, ctx)
        return int(partition), int(offset)


@main.group("dlq")
def dlq() -> None:
    """Dead letters of an input topic, of the dispatcher's internal.erp-pending and
    finance.journal, of erp.commands, or of the webhooks connector, kept in `<topic>.dlq`
    (`webhooks.dlq`).

    A dead letter is the original record (key, value, headers) with erpbridge.dlq.*
    headers saying why it failed (reason, error, stage), where it came from (topic,
    partition, offset) and when; a webhook's is the request's raw body and the provider's
    headers, from its route (/webhooks/<provider>/<route>).
    """


@dlq.command("list")
@click.argument("topic", type=_SOURCES, metavar="TOPIC")
@click.option("--reason", help="Only the dead letters with this reason.")
@click.pass_context
def list_dead_letters(ctx: click.Context, topic: str, reason: str | None) -> None:
    """Show each dead letter of TOPIC (commerce.orders, commerce.payments, commerce.inventory,
    internal.erp-pending, finance.journal, erp.commands, storefront.fulfilments, erp.catalog
    or webhooks; ERPBRIDGE_TOPIC_PREFIX
    is prepended): its partition and offset on `<topic>.dlq`, the offset it had on TOPIC (a
    webhook's route), the reason, when it failed, its key and the error.

    \b
    Examples:
      erpbridge dlq list commerce.orders
      erpbridge dlq list erp.commands --reason unknown-sku
      erpbridge dlq list webhooks
    """
    physical, letters, _ = _read(connect(ctx), topic)
    try:
        letters = choose(letters, physical, reason=reason)
    except RecordsError as error:
        raise click.ClickException(str(error)) from None
    if not letters:
        click.echo(f"no dead letters in {physical}")
        return
    columns = _WEBHOOK_COLUMNS if topic == WEBHOOKS else _COLUMNS
    rows = [columns, *(_row(letter, topic) for letter in letters)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns) - 1)]
    for row in rows:
        click.echo(
            "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]])
        )
    click.echo(f"{counted(len(letters), 'dead letter')} in {physical}")


@dlq.command("replay")
@click.argument("topic", type=_SOURCES, metavar="TOPIC")
@click.option(
    "--offset",
    "offsets",
    type=_PartitionOffset(),
    multiple=True,
    help="The dead letter at PARTITION:OFFSET of `<topic>.dlq` (as `dlq list` shows); repeatable.",
)
@click.option("--reason", help="Every dead letter with this reason.")
@click.option("--all", "every", is_flag=True, help="Every dead letter.")
@click.option("--dry-run", is_flag=True, help="List what would be sent back; send nothing.")
@click.pass_context
def replay_dead_letters(
    ctx: click.Context,
    topic: str,
    offsets: tuple[tuple[int, int], ...],
    reason: str | None,
    every: bool,
    dry_run: bool,
) -> None:
    """Send chosen dead letters of TOPIC back to it, once what made them fail is fixed.

    Each goes back to TOPIC at the partition it came from, with its original key, value
    and headers (the erpbridge.dlq.* headers removed), so the topology or the ERP
    connector processes it again; one that fails again is dead-lettered anew with the
    reason of now. Sending one twice doubles nothing: the topology de-duplicates events
    by event id and the connector looks each document up by command id. The dead letters
    stay on `<topic>.dlq`. Refuses, sending nothing, an offset with no dead letter and a
    reason no dead letter has. On a compacted TOPIC (erp.catalog, erp.customers) a dead letter whose key
    has a newer record there is skipped: that record is the truth now.

    A webhook's dead letter (TOPIC webhooks) is mapped again instead, with the routes
    configured now (a location or SKU added, an API key given): its signature checked with
    the route's secrets, what the provider's API adds read, and its events published to
    the input topics with the provider's event ids, so one the provider also re-sent is
    still one event. One that still cannot be mapped is named with the reason of now, and
    the command exits 1 once the others are published.

    \b
    Examples:
      erpbridge dlq replay commerce.orders --offset 0:17 --offset 2:4
      erpbridge dlq replay commerce.payments --reason no-exchange-rate
      erpbridge dlq replay erp.commands --all --dry-run
      erpbridge dlq replay erp.catalog --reason storefront-unavailable
      erpbridge dlq replay webhooks --reason unmapped-location
    """
    if sum([bool(offsets), reason is not None, every]) != 1:
        raise click.UsageError("choose the dead letters with --offset P:O, --reason R or --all")
    settings = connect(ctx)
    physical, letters, partitions = _read(settings, topic)
    try:
        chosen = choose(letters, physical, offsets=offsets, partitions=partitions, reason=reason)
    except RecordsError as error:
        raise click.ClickException(str(error)) from None
    if topic == WEBHOOKS:
        _replay_webhooks(settings, physical, chosen, dry_run)
        return
    source = TopicCatalog.from_settings(settings).physical(topic)
    try:
        outgoing = [(letter, letter.original(source)) for letter in chosen]
        if spec(topic).compacted:
            outgoing = _current(settings, source, outgoing)
    except RecordsError as error:
        raise click.ClickException(str(error)) from None
    if not outgoing:
        click.echo(f"no dead letters in {physical}; nothing sent")
        return
    sender = None if dry_run else Sender(settings.producer_config())
    for letter, original in outgoing:
        line = (
            f"partition {letter.record.partition} offset {letter.record.offset} "
            f"({letter.reason}, source offset {letter.source_offset}) "
            f"to {source} partition {original.partition}"
        )
        if sender is None:
            click.echo(f"would re-send {line}")
        else:
            sender.send(original)
            click.echo(f"re-sent {line}")
    if sender is None:
        click.echo(
            f"dry run: {counted(len(outgoing), 'dead letter')} would go back to {source}; nothing sent"
        )
        return
    confirm(sender, "dead letter", source)
    click.echo(f"sent {counted(len(outgoing), 'dead letter')} from {physical} back to {source}")


def _current(
    settings: Settings, source: str, outgoing: list[tuple[StoredDeadLetter, Outgoing]]
) -> list[tuple[StoredDeadLetter, Outgoing]]:
    """On a compacted topic the last record per key is the truth: a dead letter whose key
    has a different record there now is superseded, and sending it back would undo that."""
    kept = []
    with PartitionReader(settings.confluent_config()) as reader:
        for letter, original in outgoing:
            assert original.partition is not None and original.key is not None
            now = reader.latest(source, original.partition, [original.key]).get(original.key)
            if now is not None and now.value != original.value:
                click.echo(
                    f"skipped partition {letter.record.partition} offset {letter.record.offset}: "
                    f"{source} has a newer record of {original.key.decode(errors='replace')}"
                )
                continue
            kept.append((letter, original))
    return kept


def _read(settings: Settings, topic: str) -> tuple[str, list[StoredDeadLetter], list[int]]:
    """The dead-letter topic's name, its dead letters and its partitions."""
    physical = TopicCatalog.from_settings(settings).physical(dead_letter_of(topic))
    try:
        with PartitionReader(settings.confluent_config()) as reader:
            return physical, read_dead_letters(reader, physical), reader.partitions(physical)
    except RecordsError as error:
        raise click.ClickException(str(error)) from None


def _replay_webhooks(
    settings: Settings, physical: str, chosen: list[StoredDeadLetter], dry_run: bool
) -> None:
    if not chosen:
        click.echo(f"no dead letters in {physical}; nothing published")
        return
    try:
        routes = routes_of(settings)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    catalog = TopicCatalog.from_settings(settings)

    async def mapped() -> list[Replay]:
        async with httpx.AsyncClient(timeout=_API_TIMEOUT_SECONDS) as client:
            intake = Intake(catalog, codec_from_settings(settings), client)
            return await replays(chosen, routes, intake)

    outcomes = asyncio.run(mapped())
    sender = None if dry_run else Sender(settings.producer_config())
    failing = 0
    for outcome in outcomes:
        letter = outcome.letter
        where = (
            f"partition {letter.record.partition} offset {letter.record.offset} "
            f"({letter.reason}, {outcome.route})"
        )
        if outcome.problem is not None:
            failing += 1
            click.echo(f"{where}: {outcome.problem}; it stays on {physical}", err=True)
            continue
        topics = Counter(record.topic for record in outcome.records)
        what = ", ".join(f"{counted(n, 'event')} to {t}" for t, n in sorted(topics.items()))
        if sender is None:
            click.echo(f"would publish {where}: {what or 'nothing'}")
            continue
        for record in outcome.records:
            sender.send(record)
        click.echo(f"published {where}: {what or 'nothing'}")
    mapped_now = len(outcomes) - failing
    if sender is None:
        click.echo(
            f"dry run: {counted(mapped_now, 'dead letter')} of {physical} would be published; "
            "nothing sent"
        )
    else:
        confirm(sender, "event", "the input topics")
        click.echo(f"published {counted(mapped_now, 'dead letter')} of {physical}")
    if failing:
        raise click.ClickException(
            f"{counted(failing, 'dead letter')} of {physical} still cannot be published"
        )


def _row(letter: StoredDeadLetter, topic: str) -> tuple[str, ...]:
    key = letter.record.key
    return (
        str(letter.record.partition),
        str(letter.record.offset),
        letter.headers.get(deadletter.SOURCE_TOPIC, "?")
        if topic == WEBHOOKS
        else letter.source_offset,
        letter.reason,
        letter.failed_at,
        "" if key is None else key.decode(errors="backslashreplace"),
        letter.error,
    )
