"""`erpbridge dlq list|replay TOPIC`: dead letters shown, and sent back once the cause is fixed."""

from __future__ import annotations

from typing import Any

import click

from streams.cli.app import LogicalTopic, confirm, connect, counted, main
from streams.contracts.topics import (
    ERP_COMMANDS,
    ERP_PENDING,
    INPUTS,
    JOURNAL,
    TopicCatalog,
    dead_letter_of,
)
from streams.ops.dlq import StoredDeadLetter, choose, read_dead_letters
from streams.ops.records import PartitionReader, RecordsError, Sender
from streams.ops.settings import Settings

_SOURCES = LogicalTopic(
    (*INPUTS, ERP_PENDING, JOURNAL, ERP_COMMANDS),
    "{topic} is none of the topics whose dead letters this works on: an input topic, the "
    "dispatcher's internal.erp-pending and finance.journal, or erp.commands",
)
_COLUMNS = ("partition", "offset", "source offset", "reason", "failed at", "key", "error")


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
    finance.journal, or of erp.commands, kept in `<topic>.dlq`.

    A dead letter is the original record (key, value, headers) with erpbridge.dlq.*
    headers saying why it failed (reason, error, stage), where it came from (topic,
    partition, offset) and when.
    """


@dlq.command("list")
@click.argument("topic", type=_SOURCES, metavar="TOPIC")
@click.option("--reason", help="Only the dead letters with this reason.")
@click.pass_context
def list_dead_letters(ctx: click.Context, topic: str, reason: str | None) -> None:
    """Show each dead letter of TOPIC (commerce.orders, commerce.payments, commerce.inventory
    or erp.commands; ERPBRIDGE_TOPIC_PREFIX is prepended): its partition and offset on
    `<topic>.dlq`, the offset it had on TOPIC, the reason, when it failed, its key and the
    error.

    \b
    Examples:
      erpbridge dlq list commerce.orders
      erpbridge dlq list erp.commands --reason unknown-sku
    """
    physical, letters, _ = _read(connect(ctx), topic)
    try:
        letters = choose(letters, physical, reason=reason)
    except RecordsError as error:
        raise click.ClickException(str(error)) from None
    if not letters:
        click.echo(f"no dead letters in {physical}")
        return
    rows = [_COLUMNS, *(_row(letter) for letter in letters)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS) - 1)]
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
    reason no dead letter has.

    \b
    Examples:
      erpbridge dlq replay commerce.orders --offset 0:17 --offset 2:4
      erpbridge dlq replay commerce.payments --reason no-exchange-rate
      erpbridge dlq replay erp.commands --all --dry-run
    """
    if sum([bool(offsets), reason is not None, every]) != 1:
        raise click.UsageError("choose the dead letters with --offset P:O, --reason R or --all")
    settings = connect(ctx)
    physical, letters, partitions = _read(settings, topic)
    source = TopicCatalog.from_settings(settings).physical(topic)
    try:
        chosen = choose(letters, physical, offsets=offsets, partitions=partitions, reason=reason)
        outgoing = [(letter, letter.original(source)) for letter in chosen]
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


def _read(settings: Settings, topic: str) -> tuple[str, list[StoredDeadLetter], list[int]]:
    """The dead-letter topic's name, its dead letters and its partitions."""
    physical = TopicCatalog.from_settings(settings).physical(dead_letter_of(topic))
    try:
        with PartitionReader(settings.confluent_config()) as reader:
            return physical, read_dead_letters(reader, physical), reader.partitions(physical)
    except RecordsError as error:
        raise click.ClickException(str(error)) from None


def _row(letter: StoredDeadLetter) -> tuple[str, ...]:
    key = letter.record.key
    return (
        str(letter.record.partition),
        str(letter.record.offset),
        letter.source_offset,
        letter.reason,
        letter.failed_at,
        "" if key is None else key.decode(errors="backslashreplace"),
        letter.error,
    )
