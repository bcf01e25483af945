"""`erpbridge local up`: a broker (and, by option, a schema registry, and Tryton with the ERP
connector) on this machine for feeding erpbridge your own events, until Ctrl-C."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
from contextlib import ExitStack
from types import FrameType

import click

from streams.cli.app import check_kafka, main, settings_of
from streams.contracts.changelogs import changelog_sources
from streams.contracts.topics import TopicCatalog
from streams.local.kafka import running_broker
from streams.local.registry import running_registry
from streams.local.tryton import running_tryton
from streams.ops.topic_admin import ensure_topics

_CONNECTOR_STOP_SECONDS = 30.0


@main.group("local")
def local() -> None:
    """A local stack for your own events: `erpbridge local up`."""


@local.command("up")
@click.option("--registry", is_flag=True, help="Also a schema registry (Confluent framing).")
@click.option("--erp", is_flag=True, help="Also a Tryton ERP with the ERP connector serving it.")
@click.pass_context
def up(ctx: click.Context, registry: bool, erp: bool) -> None:
    """Start a Kafka broker (yours if KAFKA_BOOTSTRAP_SERVERS is set), create every topic,
    print the settings to export in the shells that run `erpbridge worker`, `produce` and
    `tail`, and keep it all running until Ctrl-C, which stops what it started.

    With --registry a schema registry too (the writers then use its framing); with --erp a
    Tryton ERP of its own (the first run installs it) and `erpbridge connector erp`
    executing erp.commands in it, its log in the process's output.

    \b
    Example (see the README's walkthrough):
      erpbridge local up                 # terminal 1
      export KAFKA_BOOTSTRAP_SERVERS=... # terminal 2: what it printed
      erpbridge worker
    """
    base = settings_of(ctx)
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    with ExitStack() as stack:
        broker = stack.enter_context(running_broker())
        exports = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers}
        if base.topic_prefix:
            exports["ERPBRIDGE_TOPIC_PREFIX"] = base.topic_prefix
        if registry:
            exports["ERPBRIDGE_SCHEMA_REGISTRY_URL"] = stack.enter_context(running_registry()).url
        settings = base.model_copy(
            update={
                "kafka_bootstrap_servers": broker.bootstrap_servers,
                "schema_registry_url": exports.get("ERPBRIDGE_SCHEMA_REGISTRY_URL"),
            }
        )
        check_kafka(settings)
        report = ensure_topics(
            settings.confluent_config(),
            TopicCatalog.from_settings(settings),
            changelogs=changelog_sources(settings.app_id),
        )
        click.echo(f"broker: {broker.kind} at {broker.bootstrap_servers}; topics: {report}")
        if erp:
            click.echo("ERP: starting Tryton (the first run installs it and prepares its database)")
            tryton = stack.enter_context(running_tryton())
            connector = {
                "ERPBRIDGE_ERP_URL": tryton.url,
                "ERPBRIDGE_ERP_LOGIN": tryton.login,
                "ERPBRIDGE_ERP_PASSWORD": tryton.password,
            }
            process = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", "connector", "erp", "--loglevel", "warning"],
                env={**os.environ, **exports, **connector},
            )
            stack.callback(_stop, process)
            click.echo(f"ERP: Tryton at {tryton.url}, the ERP connector executing erp.commands")
        click.echo("In the shells that run erpbridge against this stack:")
        for name, value in exports.items():
            click.echo(f"export {name}={shlex.quote(value)}")
        click.echo("Ctrl-C stops the stack.")
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        stopping.wait()
        click.echo("stopping the local stack")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=_CONNECTOR_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
