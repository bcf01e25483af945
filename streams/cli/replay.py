"""`erpbridge replay TOPIC`: stored input records re-sent onto their topic for the topology."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import click

from streams.cli.app import IsoTime, LogicalTopic, confirm, connect, counted, main
from streams.contracts.topics import INPUTS, TopicCatalog
from streams.ops.records import PartitionReader, Record, RecordsError, Sender
from streams.ops.replay import Selection, Span, forgotten, selected, spans
from streams.topology.agents.intake import partition_for


@main.command("replay")
@click.argument(
    "topic", type=LogicalTopic(INPUTS, "{topic} is not an input topic"), metavar="TOPIC"
)
@click.option("--from", "since", type=IsoTime(), help="Records written at or after this time.")
@click.option("--to", "until", type=IsoTime(), help="Records written before this time.")
@click.option("--partition", type=click.IntRange(min=0), help="Only this partition.")
@click.option("--from-offset", type=click.IntRange(min=0), help="First offset (with --partition).")
@click.option(
    "--to-offset", type=click.IntRange(min=0), help="Last offset, included (with --partition)."
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    help="Only this key's records (order id or SKU); repeatable. Each must have a record.",
)
@click.option("--dry-run", is_flag=True, help="List what would be re-sent; send nothing.")
@click.pass_context
def replay(
    ctx: click.Context,
    topic: str,
    since: datetime | None,
    until: datetime | None,
    partition: int | None,
    from_offset: int | None,
    to_offset: int | None,
    keys: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Re-send stored records of input TOPIC onto it, so the topology processes them again.

    TOPIC is commerce.orders, commerce.payments or commerce.inventory; ERPBRIDGE_TOPIC_PREFIX
    is prepended. Choose the records by the time they were written (--from, --to), by
    offsets of one partition (--partition with --from-offset, --to-offset), or by key
    (--key, repeatable, alone or within a range); without any, the whole topic. Each record
    goes back with its key, value and headers onto its own partition, after the offsets
    that were the end when replay started.

    Idempotent by construction: the topology de-duplicates by event id, so a replayed event
    it has applied already is counted as a duplicate and changes nothing; its outputs go
    again under the same ids (ERP commands, journal entries), which their receivers
    de-duplicate, so nothing is doubled. Records written longer ago than
    ERPBRIDGE_DEDUP_TTL_HOURS, whose event ids the topology may have forgotten, are refused.
    A record that was dead-lettered is dead-lettered again.

    Prints per partition the offsets read and the records re-sent. Refuses, sending
    nothing, a topic that is not an input or does not exist, a partition or offset that
    does not exist, and a key with no record in the range.

    \b
    Examples:
      erpbridge replay commerce.orders --from 2026-11-26T09:00:00Z --to 2026-11-26T10:00:00Z
      erpbridge replay commerce.payments --partition 2 --from-offset 1500 --to-offset 1520
      erpbridge replay commerce.orders --key 450789469 --key 450789470 --dry-run
    """
    offsets_given = from_offset is not None or to_offset is not None
    if offsets_given and partition is None:
        raise click.UsageError("--from-offset and --to-offset need --partition")
    if offsets_given and (since is not None or until is not None):
        raise click.UsageError("give a time range (--from, --to) or offsets, not both")
    if from_offset is not None and to_offset is not None and to_offset < from_offset:
        raise click.UsageError(f"--to-offset {to_offset} is before --from-offset {from_offset}")
    if since is not None and until is not None and until <= since:
        raise click.UsageError(f"--to {until.isoformat()} is not after --from {since.isoformat()}")
    settings = connect(ctx)
    catalog = TopicCatalog.from_settings(settings)
    physical = catalog.physical(topic)
    selection = Selection(since, until, partition, from_offset, to_offset, keys)
    # Producers partition by murmur2 (the topology dead-letters records that are not), so a
    # key's records are on one partition.
    key_partitions = {key: partition_for(key.encode(), catalog.partitions(topic)) for key in keys}
    for key, belongs in key_partitions.items():
        if partition is not None and belongs != partition:
            raise click.UsageError(
                f"key {key} belongs on partition {belongs} of {physical} (murmur2), not {partition}"
            )
    remembered_since = datetime.now(UTC) - timedelta(hours=settings.dedup_ttl_hours)
    try:
        with PartitionReader(settings.confluent_config()) as reader:
            chosen = spans(reader, physical, selection, set(key_partitions.values()))
            old = forgotten(reader, physical, chosen, remembered_since)
            if old:
                raise RecordsError(
                    f"{physical}: {'; '.join(map(str, old))} "
                    f"were written before {remembered_since.isoformat(timespec='seconds')}, "
                    f"ERPBRIDGE_DEDUP_TTL_HOURS ({settings.dedup_ttl_hours:g}) ago: the "
                    "topology may have forgotten their event ids and apply them again; "
                    "choose a later range"
                )
            records = selected(reader, physical, chosen, keys)
            if keys:
                # Checked before anything is sent; a key's records are few.
                records = iter(_with_every_key(list(records), keys, physical, chosen))
            counts = _resend(settings.producer_config(), physical, records, dry_run)
    except RecordsError as error:
        raise click.ClickException(str(error)) from None
    verb = "would re-send" if dry_run else "re-sent"
    for span in chosen:
        click.echo(
            f"{physical} partition {span.partition}: read {span.offsets}, "
            f"{verb} {counts[span.partition]}"
        )
    total = sum(counts.values())
    if dry_run:
        click.echo(
            f"dry run: {counted(total, 'record')} would be re-sent to {physical}; nothing sent"
        )
    else:
        click.echo(
            f"re-sent {counted(total, 'record')} to {physical}; the topology counts those it applied "
            "already as duplicates"
        )


def _with_every_key(
    records: list[Record], keys: tuple[str, ...], topic: str, chosen: list[Span]
) -> list[Record]:
    found = {record.key for record in records}
    missing = [key for key in keys if key.encode() not in found]
    if missing:
        where = "; ".join(f"partition {s.partition}: {s.offsets}" for s in chosen) or "none"
        raise RecordsError(
            f"{topic}: no record with key {', '.join(missing)} in the range read ({where})"
        )
    return records


def _resend(
    config: dict[str, str | bool], topic: str, records: Iterator[Record], dry_run: bool
) -> Counter[int]:
    """Records per partition, sent (or listed, on a dry run) as they are read."""
    counts: Counter[int] = Counter()
    sender = None if dry_run else Sender(config)
    for record in records:
        counts[record.partition] += 1
        if sender is None:
            click.echo(f"would re-send {record}")
        else:
            sender.send(record.resend(f"partition {record.partition} offset {record.offset}"))
    if sender is not None:
        confirm(sender, "record", topic)
    return counts
