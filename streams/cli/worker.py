"""`erpbridge worker`: the stream worker as it runs in production."""

from __future__ import annotations

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
