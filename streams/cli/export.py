"""`erpbridge export TOPIC...`: topics as typed Parquet or CSV files for analysts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from tqdm import tqdm

from streams.cli.app import IsoTime, LogicalTopic, connect, counted, main
from streams.contracts import deadletter
from streams.contracts.codec import Codec, DecodeError, codec_from_settings
from streams.contracts.columns import Columns
from streams.contracts.topics import SPECS, Role, TopicCatalog, spec
from streams.ops.records import PartitionReader, Record, RecordsError

_TOPICS = LogicalTopic(
    tuple(s.name for s in SPECS if s.value_schema is not None or s.role is Role.DEAD_LETTER),
    "{topic} has no records to export",
)
_BATCH = 10_000
_META = pa.schema(
    [
        pa.field("_partition", pa.int32(), nullable=False),
        pa.field("_offset", pa.int64(), nullable=False),
        pa.field("_timestamp", pa.timestamp("ms", tz="UTC")),
        pa.field("_key", pa.string()),
    ]
)
_DEAD_LETTER = pa.schema(
    [
        pa.field("reason", pa.string()),
        pa.field("error", pa.string()),
        pa.field("stage", pa.string()),
        pa.field("source_topic", pa.string()),
        pa.field("source_partition", pa.string()),
        pa.field("source_offset", pa.string()),
        pa.field("value", pa.binary()),
    ]
)


@main.command("export")
@click.argument("topics", nargs=-1, required=True, type=_TOPICS)
@click.option(
    "--format", "fmt", type=click.Choice(["parquet", "csv"]), default="parquet", show_default=True
)
@click.option(
    "-o",
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where <topic>.parquet or <topic>.csv is written (created if missing).",
)
@click.option("--latest", is_flag=True, help="Only the last record of each key: the truth per key.")
@click.option("--since", type=IsoTime(), help="Only records written at or after this time.")
@click.option("--until", type=IsoTime(), help="Only records written before this time.")
@click.pass_context
def export(
    ctx: click.Context,
    topics: tuple[str, ...],
    fmt: str,
    output_dir: Path,
    latest: bool,
    since: datetime | None,
    until: datetime | None,
) -> None:
    """Write each TOPIC (a logical name such as finance.journal; ERPBRIDGE_TOPIC_PREFIX is
    prepended) to a Parquet or CSV file with typed columns from its Avro schema: decimals as
    decimals of the contract's precision and scale, timestamps as UTC timestamps, records as
    structs (in CSV flattened to `parent.child` columns, lists as JSON), plus `_partition`,
    `_offset`, `_timestamp` (when the record was written) and `_key`. A dead-letter topic
    (`<topic>.dlq`) gives its reason, error, stage, source and the original value.

    Reads what the topics hold when it starts, from the oldest record (or --since) to the
    newest (or --until); nothing is committed, no consumer group moves. A record that cannot
    be decoded is named on stderr and left out. A progress bar shows on a terminal.

    \b
    Examples:
      erpbridge export finance.journal reconciliation.alerts -o exports/
      erpbridge export inventory.availability --latest --format csv
      erpbridge export orders.status --since 2026-12-01T00:00:00Z
      duckdb -c "SELECT * FROM 'exports/finance.journal.parquet' LIMIT 5"
    """
    settings = connect(ctx)
    catalog = TopicCatalog.from_settings(settings)
    codec = codec_from_settings(settings)
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        with PartitionReader(settings.confluent_config()) as reader:
            for topic in topics:
                path = output_dir / f"{topic}.{fmt}"
                physical = catalog.physical(topic)
                written, skipped = _export(
                    reader, codec, topic, physical, path, fmt, latest, since, until
                )
                for problem in skipped[:10]:
                    click.echo(problem, err=True)
                left_out = (
                    f", {counted(len(skipped), 'undecodable record')} left out" if skipped else ""
                )
                click.echo(f"{topic}: {counted(written, 'record')} -> {path}{left_out}")
    except RecordsError as error:
        raise click.ClickException(str(error)) from None


def _export(
    reader: PartitionReader,
    codec: Codec,
    topic: str,
    physical: str,
    path: Path,
    fmt: str,
    latest: bool,
    since: datetime | None,
    until: datetime | None,
) -> tuple[int, list[str]]:
    schema_name = spec(topic).value_schema
    columns = None if schema_name is None else Columns(codec.store.current(schema_name))
    value_fields = list(columns.type) if columns is not None else list(_DEAD_LETTER)
    schema = pa.schema(list(_META) + value_fields)
    skipped: list[str] = []

    def rows() -> Iterator[dict[str, Any]]:
        for record in _records(reader, physical, since, until):
            meta = {
                "_partition": record.partition,
                "_offset": record.offset,
                "_timestamp": record.timestamp_ms,
                "_key": None if record.key is None else record.key.decode(errors="replace"),
            }
            if columns is None:
                yield meta | _dead_letter(record)
                continue
            try:
                datum = codec.decode(record.value, expected=schema_name).datum
            except DecodeError as error:
                skipped.append(
                    f"{physical} partition {record.partition} offset {record.offset}: {error}"
                )
                continue
            yield meta | columns.row(datum)

    chosen: Iterator[dict[str, Any]] = rows()
    if latest:
        last: dict[tuple[int, str | None], dict[str, Any]] = {}
        for row in chosen:
            last[(row["_partition"], row["_key"])] = row
        chosen = iter(sorted(last.values(), key=lambda r: (r["_partition"], r["_offset"])))
    written = 0
    writer: pq.ParquetWriter | None = None
    batches: list[pa.Table] = []
    batch: list[dict[str, Any]] = []
    for row in chosen:
        batch.append(row)
        if len(batch) == _BATCH:
            writer = _write(pa.Table.from_pylist(batch, schema=schema), path, fmt, writer, batches)
            written += len(batch)
            batch = []
    table = pa.Table.from_pylist(batch, schema=schema)
    writer = _write(table, path, fmt, writer, batches)
    written += len(batch)
    if writer is not None:
        writer.close()
    if fmt == "csv":
        pa_csv.write_csv(_flat(pa.concat_tables(batches)), path)
    return written, skipped


def _write(
    table: pa.Table, path: Path, fmt: str, writer: pq.ParquetWriter | None, batches: list[pa.Table]
) -> pq.ParquetWriter | None:
    if fmt == "csv":
        batches.append(table)
        return None
    writer = writer or pq.ParquetWriter(path, table.schema)
    writer.write_table(table)
    return writer


def _records(
    reader: PartitionReader, topic: str, since: datetime | None, until: datetime | None
) -> Iterator[Record]:
    partitions = reader.partitions(topic)
    spans = []
    for partition in partitions:
        low, high = reader.watermarks(topic, partition)
        start = low if since is None else max(low, reader.offset_at(topic, partition, since))
        end = high if until is None else min(high, reader.offset_at(topic, partition, until))
        spans.append((partition, start, end))
    total = sum(max(0, end - start) for _, start, end in spans)
    with tqdm(total=total, unit="records", desc=topic, file=sys.stderr, disable=None) as bar:
        for partition, start, end in spans:
            if end > start:
                for record in reader.read(topic, partition, start, end):
                    bar.update(1)
                    yield record


def _dead_letter(record: Record) -> dict[str, Any]:
    headers = deadletter.describe(record.headers)
    return {
        "reason": headers.get(deadletter.REASON),
        "error": headers.get(deadletter.ERROR),
        "stage": headers.get(deadletter.STAGE),
        "source_topic": headers.get(deadletter.SOURCE_TOPIC),
        "source_partition": headers.get(deadletter.SOURCE_PARTITION),
        "source_offset": headers.get(deadletter.SOURCE_OFFSET),
        "value": record.value,
    }


def _flat(table: pa.Table) -> pa.Table:
    """CSV has no nesting: structs become `parent.child` columns, lists and maps JSON text."""
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    for i, field in enumerate(table.schema):
        if pa.types.is_list(field.type) or pa.types.is_map(field.type):
            texts = [
                None if v is None else json.dumps(v, default=str)
                for v in table.column(i).to_pylist()
            ]
            table = table.set_column(i, field.name, pa.array(texts, pa.string()))
    return table
