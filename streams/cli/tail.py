"""`erpbridge tail TOPIC`: a topic decoded to JSON lines on stdout."""

from __future__ import annotations

import base64
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import click
from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from streams.cli.app import IsoTime, connect, main
from streams.contracts.codec import Codec, DecodeError, codec_from_settings
from streams.contracts.groups import TAIL_GROUP_PREFIX, reader_group
from streams.contracts.jsonlines import format_timestamp, from_datum
from streams.contracts.topics import SPECS, TopicCatalog, spec
from streams.ops.records import refused_read, retrying, unavailable_topic

_POLL_SECONDS = 0.5
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@main.command("tail")
@click.argument("topic", type=click.Choice([s.name for s in SPECS]), metavar="TOPIC")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest record (the default).")
@click.option("--from-end", is_flag=True, help="Start after the newest record (use with --follow).")
@click.option(
    "--offset", type=click.IntRange(min=0), help="Start at this offset in every partition."
)
@click.option("--since", type=IsoTime(), help="Start at the first record at or after this time.")
@click.option("--partition", type=click.IntRange(min=0), help="Read only this partition.")
@click.option("--max-messages", type=click.IntRange(min=1), help="Stop after this many records.")
@click.option(
    "--follow",
    is_flag=True,
    help="Keep waiting for new records (Ctrl-C stops) instead of stopping at the end.",
)
@click.option(
    "--values-only",
    is_flag=True,
    help="Print only the values, in the form `erpbridge produce` reads back.",
)
@click.pass_context
def tail(
    ctx: click.Context,
    topic: str,
    from_beginning: bool,
    from_end: bool,
    offset: int | None,
    since: datetime | None,
    partition: int | None,
    max_messages: int | None,
    follow: bool,
    values_only: bool,
) -> None:
    """Print the records of TOPIC as JSON lines, one per record, decoded from Avro.

    TOPIC is a logical name such as commerce.orders or commerce.orders.dlq (any topic
    of streams/contracts/topics.py); ERPBRIDGE_TOPIC_PREFIX is prepended. Each line is an
    envelope {"topic", "partition", "offset", "timestamp", "key", "value"}; with
    --values-only just the value. Without --follow, tail stops at the end offsets seen
    when it started. Dead-letter topics (*.dlq) have no schema: their records show the
    key, the headers and the value as base64. Records that cannot be decoded are
    reported on stderr and skipped. Nothing is committed: tail never moves a consumer group.

    \b
    Examples:
      erpbridge tail commerce.orders
      erpbridge tail commerce.orders --values-only > orders.jsonl
      erpbridge tail erp.commands --follow --from-end
      erpbridge tail commerce.payments --partition 2 --offset 1500 --max-messages 10
      erpbridge tail commerce.orders.dlq --since 2026-11-26T09:00:00+01:00
    """
    starts_given = sum([from_beginning, from_end, offset is not None, since is not None])
    if starts_given > 1:
        raise click.UsageError(
            "give at most one of --from-beginning, --from-end, --offset, --since"
        )
    topic_spec = spec(topic)
    if values_only and topic_spec.value_schema is None:
        raise click.UsageError(
            "--values-only needs a topic with a schema; dead-letter values are raw bytes"
        )
    settings = connect(ctx)
    try:
        physical = TopicCatalog.from_settings(settings).physical(topic)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    printer = _Printer(
        codec_from_settings(settings) if topic_spec.value_schema else None,
        topic_spec.value_schema,
        values_only,
    )
    config = settings.confluent_config()
    consumer = Consumer(
        {
            **config,
            # Required by the client; nothing joins or commits, as partitions are assigned.
            "group.id": reader_group(TAIL_GROUP_PREFIX),
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            # Only when retention removed the start offset meanwhile: read what is left.
            "auto.offset.reset": "earliest",
        }
    )
    try:
        ends = _assign(consumer, config, physical, partition, from_end, offset, since, follow)
        _consume(consumer, config, printer, ends, follow, max_messages)
    except KafkaException as exc:
        raise click.ClickException(f"{physical}: {exc}") from exc
    except KeyboardInterrupt:
        pass  # the way to stop --follow
    except BrokenPipeError:
        # The reader (e.g. `head`) has gone; stop quietly instead of failing on the final flush.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        consumer.close()
    if printer.undecodable:
        click.echo(f"{printer.undecodable} undecodable records skipped", err=True)


def _assign(
    consumer: Consumer,
    config: dict[str, str],
    topic: str,
    only: int | None,
    from_end: bool,
    offset: int | None,
    since: datetime | None,
    follow: bool,
) -> dict[int, int]:
    """Assign the start offsets; the end offset, at start, of each partition with records to read."""
    metadata = consumer.list_topics(topic, timeout=30)
    described = metadata.topics.get(topic)
    if described is None or described.error is not None:
        error = described and described.error
        raise click.ClickException(str(unavailable_topic(config, topic, error, "Read")))
    partitions = sorted(described.partitions)
    if only is not None:
        if only not in partitions:
            raise click.UsageError(f"{topic} has partitions 0..{len(partitions) - 1}, not {only}")
        partitions = [only]

    def watermarks(partition: int) -> tuple[int, int]:
        tp = TopicPartition(topic, partition)
        return retrying(lambda: consumer.get_watermark_offsets(tp, timeout=30))

    marks = {p: watermarks(p) for p in partitions}
    if since is not None:
        millis = (since - _EPOCH) // timedelta(milliseconds=1)
        wanted = [TopicPartition(topic, p, millis) for p in partitions]
        found = {
            tp.partition: tp.offset
            for tp in retrying(lambda: consumer.offsets_for_times(wanted, timeout=30))
        }
        # -1: no record at or after that time, so start at the end.
        starts = {p: found[p] if found[p] >= 0 else marks[p][1] for p in partitions}
    elif from_end:
        starts = {p: marks[p][1] for p in partitions}
    elif offset is not None:
        starts = {p: min(max(offset, marks[p][0]), marks[p][1]) for p in partitions}
    else:
        starts = {p: marks[p][0] for p in partitions}
    consumer.assign([TopicPartition(topic, p, starts[p]) for p in partitions])
    spans = ", ".join(f"[{p}] {starts[p]}..{marks[p][1]}" for p in partitions)
    click.echo(f"reading {topic} {spans}{', then following' if follow else ''}", err=True)
    return {p: marks[p][1] for p in partitions if starts[p] < marks[p][1]}


def _consume(
    consumer: Consumer,
    config: dict[str, str],
    printer: _Printer,
    ends: dict[int, int],
    follow: bool,
    max_messages: int | None,
) -> None:
    remaining = dict(ends)
    seen = 0
    while (follow or remaining) and (max_messages is None or seen < max_messages):
        message = consumer.poll(_POLL_SECONDS)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                remaining = {p: end for p, end in remaining.items() if p != message.partition()}
                continue
            refused = refused_read(config, message.topic() or "", error)
            if refused is not None:
                raise click.ClickException(str(refused))
            if error.fatal():
                raise KafkaException(error)
            click.echo(f"kafka: {error.str()}", err=True)  # the client retries by itself
            continue
        part, position = message.partition(), message.offset()
        assert part is not None and position is not None  # always set on records
        if not follow:
            if part not in remaining or position >= remaining[part]:
                continue  # written after tail started
            if position >= remaining[part] - 1:
                del remaining[part]
        printer.print(message)
        seen += 1


class _Printer:
    def __init__(self, codec: Codec | None, schema_name: str | None, values_only: bool) -> None:
        self._codec = codec
        self._schema_name = schema_name
        self._values_only = values_only
        self.undecodable = 0

    def print(self, message: Message) -> None:
        envelope: dict[str, Any] = {
            "topic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
            "timestamp": _timestamp(message),
            "key": _text(message.key()),
        }
        if self._codec is None:
            # Consumed messages carry headers as a list of pairs (a dict only when producing).
            headers = cast(list[tuple[str, bytes | None]], message.headers() or [])
            envelope["headers"] = [[k, _text(v)] for k, v in headers]
            envelope["value_base64"] = base64.b64encode(message.value() or b"").decode("ascii")
            click.echo(json.dumps(envelope, ensure_ascii=False))
            return
        try:
            decoded = self._codec.decode(message.value(), expected=self._schema_name)
        except DecodeError as exc:
            self.undecodable += 1
            click.echo(
                f"{message.topic()} partition {message.partition()} offset {message.offset()}: "
                f"undecodable ({exc.reason}): {exc.detail}",
                err=True,
            )
            return
        value = from_datum(self._codec.store.current(decoded.schema_name), decoded.datum)
        line = value if self._values_only else {**envelope, "value": value}
        click.echo(json.dumps(line, ensure_ascii=False))


def _timestamp(message: Message) -> str | None:
    kind, millis = message.timestamp()
    if kind == TIMESTAMP_NOT_AVAILABLE:
        return None
    return format_timestamp(_EPOCH + timedelta(milliseconds=millis))


def _text(data: bytes | None) -> str | None:
    if data is None:
        return None
    return data.decode("utf-8", errors="backslashreplace")
