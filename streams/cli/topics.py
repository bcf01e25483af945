"""`erpbridge topics create|list`: the catalogue's topics on the cluster."""

from __future__ import annotations

import click
from confluent_kafka import KafkaException

from streams.cli.app import connect, main, settings_of
from streams.contracts.changelogs import changelog_sources
from streams.contracts.topics import TopicCatalog
from streams.ops.topic_admin import ensure_topics, topic_states


@main.group("topics")
def topics() -> None:
    """Create or inspect the topics of streams/contracts/topics.py on the cluster.

    Physical names carry ERPBRIDGE_TOPIC_PREFIX; partition counts come from
    ERPBRIDGE_PARTITIONS and ERPBRIDGE_TOPIC_PARTITIONS.
    """


@topics.command("create")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the cluster.")
@click.pass_context
def create(ctx: click.Context, timeout: float) -> None:
    """Create every topic of the catalogue, and the tables' changelogs, that does not exist yet.

    Safe to run again: existing topics are reported as existing. A topic that exists
    with another partition count than the catalogue's is reported as an error (exit 1)
    and left alone.

    \b
    Examples:
      erpbridge topics create
      ERPBRIDGE_TOPIC_PREFIX=staging- ERPBRIDGE_PARTITIONS=12 erpbridge topics create
    """
    config, catalog = _connection(ctx, timeout)
    changelogs = changelog_sources(settings_of(ctx).app_id)
    try:
        report = ensure_topics(config, catalog, changelogs=changelogs, timeout=timeout)
    except KafkaException as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {config['bootstrap.servers']}: {exc}"
        ) from exc
    for name in report.created:
        click.echo(f"created   {name} ({report.partitions[name]} partitions)")
    for name in report.existing:
        click.echo(f"exists    {name}")
    for message in report.errors.values():
        click.echo(f"error     {message}", err=True)
    click.echo(f"topics: {report}")
    if not report.ok:
        ctx.exit(1)


@topics.command("list")
@click.option("--timeout", default=30.0, show_default=True, help="Seconds to wait for the cluster.")
@click.pass_context
def list_topics(ctx: click.Context, timeout: float) -> None:
    """Show every catalogue topic with its partition count and the configs set on it.

    Values that differ from the catalogue are followed by the catalogue's value;
    topics that do not exist yet say so.

    \b
    Example:
      erpbridge topics list
    """
    config, catalog = _connection(ctx, timeout)
    try:
        states = topic_states(config, catalog, timeout=timeout)
    except KafkaException as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {config['bootstrap.servers']}: {exc}"
        ) from exc
    width = max(len(state.name) for state in states)
    for state in states:
        if state.partitions is None:
            click.echo(
                f"{state.name:<{width}}  missing (catalogue: {state.wanted_partitions} partitions)"
            )
            continue
        partitions = str(state.partitions)
        if state.partitions != state.wanted_partitions:
            partitions += f" (catalogue: {state.wanted_partitions})"
        configs = []
        for key, value in state.configs.items():
            wanted = state.wanted_configs.get(key)
            drift = f" (catalogue: {wanted})" if wanted is not None and wanted != value else ""
            configs.append(f"{key}={value}{drift}")
        click.echo(f"{state.name:<{width}}  {partitions:>3} partitions  {' '.join(configs)}")


def _connection(ctx: click.Context, timeout: float) -> tuple[dict[str, str], TopicCatalog]:
    settings = connect(ctx, timeout=timeout)
    try:
        catalog = TopicCatalog.from_settings(settings)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    return settings.confluent_config(), catalog
