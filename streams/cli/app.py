"""The root `erpbridge` command group and what every verb shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from streams.contracts.jsonlines import JsonLineError, parse_timestamp
from streams.contracts.topics import spec
from streams.ops.kafka_security import CHECK_TIMEOUT_SECONDS, KafkaAccessError, check_connection
from streams.ops.records import Sender
from streams.ops.settings import InvalidSettings, Settings, load_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--bootstrap-servers",
    envvar="KAFKA_BOOTSTRAP_SERVERS",
    help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS).",
)
@click.option(
    "--topic-prefix", envvar="ERPBRIDGE_TOPIC_PREFIX", help="Tenant prefix of every topic."
)
@click.option(
    "--schema-registry-url",
    envvar="ERPBRIDGE_SCHEMA_REGISTRY_URL",
    help="Confluent-compatible schema registry; without it messages use Avro single-object framing.",
)
@click.pass_context
def main(
    ctx: click.Context,
    bootstrap_servers: str | None,
    topic_prefix: str | None,
    schema_registry_url: str | None,
) -> None:
    """erpbridge: commerce events to ERP commands over Kafka."""
    overrides: dict[str, Any] = {
        key: value
        for key, value in {
            "kafka_bootstrap_servers": bootstrap_servers,
            "topic_prefix": topic_prefix,
            "schema_registry_url": schema_registry_url,
        }.items()
        if value is not None
    }
    try:
        ctx.obj = load_settings(**overrides)
    except InvalidSettings as exc:
        raise click.UsageError(f"invalid settings:\n{exc}") from None


def settings_of(ctx: click.Context) -> Settings:
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


def connect(ctx: click.Context, *, timeout: float = CHECK_TIMEOUT_SECONDS) -> Settings:
    """The settings, once the brokers answered with them: a verb that uses Kafka stops here,
    within seconds and naming the problem, if it cannot (wrong password, untrusted
    certificate, brokers unreachable) rather than retrying without end."""
    settings = settings_of(ctx)
    if not settings.kafka_bootstrap_servers:
        raise click.UsageError(
            "no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS or pass --bootstrap-servers"
        )
    check_kafka(settings, timeout=timeout)
    return settings


def check_kafka(settings: Settings, *, timeout: float = CHECK_TIMEOUT_SECONDS) -> None:
    try:
        check_connection(settings, timeout=timeout)
    except KafkaAccessError as error:
        raise click.ClickException(str(error)) from None


class IsoTime(click.ParamType):
    """An ISO 8601 time with its zone, as the JSON lines write them."""

    name = "ISO-TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return parse_timestamp(value)
        except JsonLineError as exc:
            self.fail(str(exc), param, ctx)


class LogicalTopic(click.ParamType):
    """A logical topic name a verb works on; any other is refused with `refusal` (which may
    name it as {topic}) and the names it takes."""

    name = "TOPIC"

    def __init__(self, allowed: Sequence[str], refusal: str) -> None:
        self.allowed = tuple(allowed)
        self.refusal = refusal

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value in self.allowed:
            return value
        try:
            spec(value)
        except KeyError:
            problem = f"unknown topic {value!r}"
        else:
            problem = self.refusal.format(topic=value)
        self.fail(f"{problem}; it takes {', '.join(self.allowed)}", param, ctx)


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """`1 record`, `3 records` (or the `plural` given): for what the verbs print."""
    return f"{number} {noun}" if number == 1 else f"{number} {plural or noun + 's'}"


def confirm(sender: Sender, noun: str, topic: str) -> None:
    """Wait until the broker confirmed every record sent; each one it did not goes to stderr,
    then an error."""
    failures = sender.finish()
    for failure in failures:
        click.echo(failure, err=True)
    if failures:
        raise click.ClickException(f"{counted(len(failures), noun)} not confirmed by {topic}")
