"""`erpbridge acls list|apply`: the principals' ACLs for a Kafka cluster without Strimzi
(Strimzi's KafkaUsers carry the same: `erpbridge k8s users`)."""

from __future__ import annotations

import click

from streams.cli.app import connect, main, settings_of
from streams.contracts.access import principals
from streams.ops.acls import AclsRefused, apply_acls, kafka_acls_commands


@main.group("acls")
def acls_group() -> None:
    """Kafka ACLs: one principal per component, each with what its job needs."""


@acls_group.command("list")
@click.pass_context
def list_acls(ctx: click.Context) -> None:
    """Print `kafka-acls.sh --add` lines for every principal, for the topics and groups of
    ERPBRIDGE_APP_ID and ERPBRIDGE_TOPIC_PREFIX.

    \b
    Example:
      erpbridge acls list > acls.sh
      BOOTSTRAP=kafka:9093 ADMIN_CONFIG=admin.properties sh acls.sh
    """
    click.echo(kafka_acls_commands(principals(settings_of(ctx))), nl=False)


@acls_group.command("apply")
@click.pass_context
def apply(ctx: click.Context) -> None:
    """Create every principal's ACLs on the cluster (as a principal allowed to alter ACLs);
    ACLs that exist stay as they are."""
    settings = connect(ctx)
    try:
        count = apply_acls(settings.confluent_config(), principals(settings))
    except AclsRefused as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"{count} ACLs in place for {len(principals(settings))} principals")
