"""`erpbridge worker`: the stream worker as it runs in production."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import click

from streams.cli.app import connect, main
from streams.contracts.changelogs import changelog_sources
from streams.contracts.topics import TopicCatalog
from streams.ops.logs import configure_logging
from streams.ops.topic_admin import CopartitioningError, check_copartitioning
from streams.topology import worker
from streams.topology.app import create_topology


@main.command("worker")
@click.option("--loglevel", default="info", show_default=True)
@click.pass_context
def worker_command(ctx: click.Context, loglevel: str) -> None:
    """Run the stream worker against KAFKA_BOOTSTRAP_SERVERS until SIGINT or SIGTERM.

    Topics must exist (`erpbridge topics create`). Scale by running more workers with the
    same ERPBRIDGE_APP_ID: Kafka spreads the partitions between them.
    """
    settings = connect(ctx)
    check_data_dir(settings.data_dir)
    configure_logging(loglevel, settings=settings)
    try:
        check_copartitioning(
            settings.confluent_config(),
            TopicCatalog.from_settings(settings),
            changelog_sources(settings.app_id),
        )
    except CopartitioningError as error:
        raise click.ClickException(str(error)) from None
    worker.run(create_topology(settings), loglevel=loglevel, override_logging=False)


PROBE_BYTES = 1 << 20
"""What the start-up check writes: a store that cannot take a megabyte cannot take a batch."""


def check_data_dir(path: Path) -> None:
    """Stop at start, naming the directory and the cause, when the worker's state cannot be
    written there (read-only, full, not permitted): RocksDB would fail later, deep in Faust."""
    probe = path / ".erpbridge-write-check"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with probe.open("wb") as file:
            file.write(b"\0" * PROBE_BYTES)
            file.flush()
            os.fsync(file.fileno())
    except OSError as error:
        raise click.ClickException(
            f"ERPBRIDGE_DATA_DIR={path}: the worker cannot write its state there: "
            f"{error.strerror or error}"
        ) from None
    finally:
        with contextlib.suppress(OSError):  # nothing written, or nowhere to remove it from
            probe.unlink()
