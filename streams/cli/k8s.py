"""`erpbridge k8s topics|users`: the Strimzi KafkaTopic and KafkaUser manifests of deploy/k8s,
from the catalogue and the principals' ACLs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from streams.cli.app import main
from streams.ops import k8s


@main.group("k8s")
def k8s_group() -> None:
    """Kubernetes manifests generated from the code (deploy/k8s)."""


_Command = TypeVar("_Command", bound=Callable[..., Any])

_ENV_FILE = click.option(
    "--env-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=k8s.TOPOLOGY_ENV,
    show_default=True,
    help="Sets ERPBRIDGE_APP_ID, _TOPIC_PREFIX, _PARTITIONS and _TOPIC_PARTITIONS; the pods "
    "get the same file as a ConfigMap.",
)
_CLUSTER = click.option(
    "--cluster", default=k8s.KAFKA_CLUSTER, show_default=True, help="Strimzi cluster."
)


def _output(default: Path) -> Callable[[_Command], _Command]:
    return click.option(
        "--output",
        "-o",
        type=click.Path(dir_okay=False, path_type=Path),
        help=f"Write here instead of stdout ({default.relative_to(k8s.DEPLOY_DIR.parents[1])}).",
    )


def _write(
    render: Callable[[Path, str], str], env_file: Path, cluster: str, output: Path | None
) -> None:
    try:
        text = render(env_file, cluster)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)


@k8s_group.command("topics")
@_ENV_FILE
@_CLUSTER
@_output(k8s.KAFKA_TOPICS_YAML)
def topics(env_file: Path, cluster: str, output: Path | None) -> None:
    """A KafkaTopic for every topic of the catalogue and every table's changelog.

    \b
    Example (after changing partitions in topology.env):
      erpbridge k8s topics -o deploy/k8s/base/kafka-topics.yaml
    """
    _write(k8s.render_kafka_topics, env_file, cluster, output)


@k8s_group.command("users")
@_ENV_FILE
@_CLUSTER
@_output(k8s.KAFKA_USERS_YAML)
def users(env_file: Path, cluster: str, output: Path | None) -> None:
    """A KafkaUser (SCRAM-SHA-512) for every principal, with the ACLs its job needs.

    \b
    Example (after changing the app id or the topic prefix in topology.env):
      erpbridge k8s users -o deploy/k8s/overlays/prod/kafka-users.yaml
    """
    _write(k8s.render_kafka_users, env_file, cluster, output)
