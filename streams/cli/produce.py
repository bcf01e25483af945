"""`erpbridge produce TOPIC [FILE|-]`: JSON lines in the friendly form onto a topic, as Avro."""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any

import click

from streams.cli.app import connect, main, settings_of
from streams.contracts.codec import EncodeError, codec_from_settings
from streams.contracts.jsonlines import JsonLineError, parse_line, to_datum
from streams.contracts.topics import SPECS, TopicCatalog, spec
from streams.ops.records import Outgoing, RecordsError, Sender

_SCHEMA_TOPICS = [s.name for s in SPECS if s.value_schema is not None]
_MAX_REPORTED = 20


@dataclass(frozen=True)
class _Record:
    line: int
    key: bytes
    value: bytes


@main.command("produce")
@click.argument("topic", type=click.Choice(_SCHEMA_TOPICS), metavar="TOPIC")
@click.argument("file", type=click.File("r", encoding="utf-8"), default="-")
@click.option(
    "--key-field",
    help="Field whose value is the message key; dots reach into nested objects "
    "(default: the topic's key field in streams/contracts/topics.py).",
)
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Publish the valid lines even if some are bad (the bad ones are still reported, exit 1).",
)
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    help="Seconds the broker has to confirm every record.",
)
@click.pass_context
def produce(
    ctx: click.Context,
    topic: str,
    file: IO[str],
    key_field: str | None,
    skip_invalid: bool,
    timeout: float,
) -> None:
    """Publish JSON lines from FILE (default: stdin) to TOPIC, one Avro record per line.

    TOPIC is a logical name such as commerce.orders (any topic of streams/contracts/topics.py
    with a schema); ERPBRIDGE_TOPIC_PREFIX is prepended. Each line is one
    record in the friendly JSON form (money as strings like "19.99", ISO-8601
    timestamps with a timezone, a union of records as {"type": "OrderPlaced", ...}) —
    exactly what `erpbridge tail --values-only` prints. Blank lines are skipped.

    Every line is checked before anything is sent: if one is bad, each bad line is
    listed with its line number and field and nothing is published (exit 1).
    Every record must be confirmed by the broker, or the command fails.

    \b
    Examples:
      erpbridge produce commerce.orders tests/fixtures/events/commerce.orders.jsonl
      erpbridge tail commerce.orders --values-only | erpbridge produce commerce.orders -
      erpbridge produce commerce.payments payments.jsonl --key-field event.payment_id
    """
    settings = settings_of(ctx)
    try:
        physical = TopicCatalog.from_settings(settings).physical(topic)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    codec = codec_from_settings(settings)
    schema_name = spec(topic).value_schema
    assert schema_name is not None  # _SCHEMA_TOPICS only
    schema = codec.store.current(schema_name)
    field = key_field or spec(topic).key

    records: list[_Record] = []
    bad: list[str] = []
    for number, text in enumerate(file, start=1):
        if not text.strip():
            continue
        try:
            datum = to_datum(schema, parse_line(text))
            records.append(
                _Record(
                    number, _key_of(datum, field), codec.encode(schema_name, datum, topic=physical)
                )
            )
        except (JsonLineError, EncodeError) as exc:
            bad.append(f"line {number}: {exc}")

    for message in bad[:_MAX_REPORTED]:
        click.echo(message, err=True)
    if len(bad) > _MAX_REPORTED:
        click.echo(f"... and {len(bad) - _MAX_REPORTED} more bad lines", err=True)
    if bad and not skip_invalid:
        hint = f" (--skip-invalid publishes the {len(records)} good ones)" if records else ""
        click.echo(f"{len(bad)} bad lines: nothing published to {physical}{hint}", err=True)
        ctx.exit(1)

    connect(ctx)
    sender = Sender(settings.producer_config(), timeout=timeout)
    try:
        sender.require_topic(physical)
        for record in records:
            label = f"line {record.line}"
            sender.send(Outgoing(physical, None, record.key, record.value, (), label))
        failures = sender.finish()
    except RecordsError as exc:
        raise click.ClickException(str(exc)) from None
    for failure in failures[:_MAX_REPORTED]:
        click.echo(failure, err=True)
    if failures:
        raise click.ClickException(
            f"{len(failures)} of {len(records)} records were not confirmed by the broker for {physical}"
        )
    click.echo(f"produced {len(records)} records to {physical}")
    if bad:
        click.echo(f"skipped {len(bad)} bad lines", err=True)
        ctx.exit(1)


def _key_of(datum: dict[str, Any], field: str) -> bytes:
    value: Any = datum
    for part in field.split("."):
        if isinstance(value, tuple):  # a union of records: (name, fields)
            value = value[1]
        if not isinstance(value, dict) or part not in value:
            raise JsonLineError(field, "the key field is missing")
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise JsonLineError(field, f"the key must be a string or an integer, not {value!r:.40}")
    return str(value).encode("utf-8")
