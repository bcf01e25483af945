"""`erpbridge k8s topics`: the Strimzi KafkaTopic manifests of deploy/k8s, from the catalogue."""

from __future__ import annotations

from pathlib import Path

import click

from streams.cli.app import main
from streams.ops import k8s


@main.group("k8s")
def k8s_group() -> None:
    """Kubernetes manifests generated from the code (deploy/k8s)."""


@k8s_group.command("topics")
@click.option(
    "--env-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=k8s.TOPOLOGY_ENV,
    show_default=True,
    help="Sets ERPBRIDGE_APP_ID, _TOPIC_PREFIX, _PARTITIONS and _TOPIC_PARTITIONS; the pods "
    "get the same file as a ConfigMap.",
)
@click.option("--cluster", default=k8s.KAFKA_CLUSTER, show_default=True, help="Strimzi cluster.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write here instead of stdout (deploy/k8s/base/kafka-topics.yaml).",
)
def topics(env_file: Path, cluster: str, output: Path | None) -> None:
    """A KafkaTopic for every topic of the catalogue and every table's changelog.

    \b
    Example (after changing partitions in topology.env):
      erpbridge k8s topics -o deploy/k8s/base/kafka-topics.yaml
    """
    try:
        text = k8s.render_kafka_topics(env_file, cluster)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
