"""deploy/k8s renders, validates, and names what the code really uses.

Every overlay is rendered with kustomize (built once into the cache, tests/deploy/tools.py);
built-in objects are validated against the Kubernetes schemas, custom resources
structurally. Names, ports, paths, topics and groups are read from the code, never
repeated here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from streams.cli import main
from streams.contracts.access import WORKER, Operation, Resource, principals
from streams.contracts.changelogs import changelog_sources
from streams.contracts.groups import connector_group
from streams.contracts.topics import AGENT_SOURCES, DLQ_SUFFIX, ERP_COMMANDS, Role, TopicCatalog
from streams.ops import k8s
from streams.ops.health import LIVENESS_PATH, READINESS_PATH
from streams.ops.metrics import METRICS_PATH, exported_metric_names
from streams.ops.settings import REPO_ROOT, Settings, env_variable, load_settings, secret_fields
from tests.deploy.tools import kustomize_build, promtool

# A fresh machine builds kustomize on first use (about 2 minutes here).
pytestmark = pytest.mark.timeout(1800)

OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.33.0"
CUSTOM_API_GROUPS = ("kafka.strimzi.io", "keda.sh", "monitoring.coreos.com")
DURABILITY = {"dev": (1, 1), "prod": (3, 2)}
"""Overlay -> (replicas, min.insync.replicas) of every topic."""
POD_NAME = "erpbridge-worker-0"


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {
        overlay: list(yaml.safe_load_all(kustomize_build(k8s.DEPLOY_DIR / "overlays" / overlay)))
        for overlay in OVERLAYS
    }


def _objects(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [doc for doc in _objects(docs, kind) if doc["metadata"]["name"] == name]
    return found


def _workloads(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, its container) for the worker, the connectors and the payouts job."""
    for doc in docs:
        if doc["kind"] in ("StatefulSet", "Deployment", "CronJob"):
            for container in _pod_spec(doc)["containers"]:
                yield doc, container


def _pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    template = (
        spec["jobTemplate"]["spec"]["template"]
        if workload["kind"] == "CronJob"
        else spec["template"]
    )
    pod: dict[str, Any] = template["spec"]
    return pod


def _container_env(docs: list[dict[str, Any]], container: dict[str, Any]) -> dict[str, str]:
    """The environment a container gets: its ConfigMaps' data, then its own variables (a
    fieldRef to the pod name as a StatefulSet's first pod has it)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(_one(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in container.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
        else:
            assert variable["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            env[variable["name"]] = POD_NAME
    return env


def _settings_of(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """Settings as the process reads them from exactly `env` (a secret file's content made up)."""
    for name in list(os.environ):
        if name.startswith("ERPBRIDGE_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)
    for name, value in env.items():
        if name.endswith("_FILE"):
            value = str(tmp_path / name)
            # The webhook secrets are JSON: a signing secret per route.
            secret = '{"main": ["made-up secret"]}' if "WEBHOOK" in name else "made-up secret"
            Path(value).write_text(secret + "\n")
        monkeypatch.setenv(name, value)
    return load_settings()


def _mounted_file(
    workload: dict[str, Any], container: dict[str, Any], path: str
) -> tuple[str, str]:
    """(volume source kind and name, key) of the file at `path` in the container."""
    volumes = {v["name"]: v for v in _pod_spec(workload)["volumes"]}
    for mount in container.get("volumeMounts", []):
        directory = mount["mountPath"].rstrip("/") + "/"
        if path.startswith(directory):
            volume = volumes[mount["name"]]
            key = path[len(directory) :]
            for kind in ("secret", "configMap"):
                if kind in volume:
                    source = volume[kind]
                    name = source.get("secretName", source.get("name"))
                    items = {item["path"]: item["key"] for item in source.get("items", [])}
                    return f"{kind}/{name}", items.get(key, key)
    raise AssertionError(f"{path} is on no mounted secret or ConfigMap")


def _metric_names(text: str) -> set[str]:
    """The erpbridge metric families an expression reads (histogram series map to their family)."""
    return {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for name in re.findall(r"\berpbridge_[a-z_]+\b", text)
    }


def test_kafka_topics_yaml_is_the_generators_output() -> None:
    assert k8s.KAFKA_TOPICS_YAML.read_text() == k8s.render_kafka_topics(), (
        "deploy/k8s/base/kafka-topics.yaml is stale: run `erpbridge k8s topics -o "
        "deploy/k8s/base/kafka-topics.yaml`"
    )


def test_k8s_topics_verb_follows_its_env_file(tmp_path: Path) -> None:
    env_file, output = tmp_path / "topology.env", tmp_path / "topics.yaml"
    env_file.write_text(
        "ERPBRIDGE_APP_ID=shop\nERPBRIDGE_TOPIC_PREFIX=acme-\nERPBRIDGE_PARTITIONS=3\n"
        'ERPBRIDGE_TOPIC_PARTITIONS={"erp.commands": 12}\n'
    )
    args = ["k8s", "topics", "--env-file", str(env_file), "--cluster", "kafka-a", "-o", str(output)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    topics = {t["spec"]["topicName"]: t for t in yaml.safe_load_all(output.read_text())}
    assert topics["acme-erp.commands"]["spec"]["partitions"] == 12
    assert topics["acme-erp.commands.dlq"]["spec"]["partitions"] == 12
    assert topics["acme-commerce.orders"]["spec"]["partitions"] == 3
    assert topics["shop-orders-changelog"]["spec"]["config"]["cleanup.policy"] == "compact"
    assert {t["metadata"]["labels"][k8s.CLUSTER_LABEL] for t in topics.values()} == {"kafka-a"}

    env_file.write_text("ERPBRIDGE_APP_ID=shop\n")
    result = CliRunner().invoke(main, ["k8s", "topics", "--env-file", str(env_file)])
    assert result.exit_code == 1
    assert "does not set ERPBRIDGE_TOPIC_PREFIX, ERPBRIDGE_PARTITIONS" in result.output


def test_kafka_users_yaml_is_the_generators_output() -> None:
    assert k8s.KAFKA_USERS_YAML.read_text() == k8s.render_kafka_users(), (
        "deploy/k8s/overlays/prod/kafka-users.yaml is stale: run `erpbridge k8s users -o "
        "deploy/k8s/overlays/prod/kafka-users.yaml`"
    )


def test_k8s_users_verb_follows_its_env_file(tmp_path: Path) -> None:
    env_file, output = tmp_path / "topology.env", tmp_path / "users.yaml"
    env_file.write_text(
        "ERPBRIDGE_APP_ID=shop\nERPBRIDGE_TOPIC_PREFIX=acme-\nERPBRIDGE_PARTITIONS=3\n"
        "ERPBRIDGE_TOPIC_PARTITIONS=\n"
    )
    args = ["k8s", "users", "--env-file", str(env_file), "--cluster", "kafka-a", "-o", str(output)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    users = {u["metadata"]["name"]: u for u in yaml.safe_load_all(output.read_text())}
    worker = users[WORKER]["spec"]["authorization"]["acls"]
    names = {(acl["resource"]["type"], acl["resource"]["name"]) for acl in worker}
    assert ("topic", "acme-commerce.orders") in names
    assert ("topic", "shop-orders-changelog") in names
    assert ("group", "shop") in names
    assert {u["metadata"]["labels"][k8s.CLUSTER_LABEL] for u in users.values()} == {"kafka-a"}


def test_every_principal_is_a_kafka_user_and_every_workload_has_its_own(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["prod"]
    settings = k8s.topology_settings(k8s.TOPOLOGY_ENV)
    found = {p.user: p for p in principals(settings)}
    users = {u["metadata"]["name"]: u for u in _objects(docs, "KafkaUser")}
    assert set(users) == set(found)
    for name, user in users.items():
        authorization = user["spec"]["authorization"]
        assert authorization["type"] == "simple"
        granted = {
            (acl["resource"]["type"], acl["resource"]["name"], acl["resource"]["patternType"], op)
            for acl in authorization["acls"]
            for op in acl["operations"]
        }
        assert {acl["host"] for acl in authorization["acls"]} == {"*"}
        assert granted == {
            (
                acl.resource.value,
                acl.name,
                {"literal": "literal", "prefixed": "prefix"}[acl.pattern.value],
                acl.operation.value,
            )
            for acl in found[name].acls
        }
    workloads = {
        workload["metadata"]["name"]: _container_env(docs, container)[
            "ERPBRIDGE_KAFKA_SASL_USERNAME"
        ]
        for workload, container in _workloads(docs)
    }
    # Least privilege: no two workloads share a principal.
    assert len(set(workloads.values())) == len(workloads), workloads
    # KEDA reads lag as the user of the workload it scales: it describes the group.
    for scaled in _objects(docs, "ScaledObject"):
        (trigger,) = scaled["spec"]["triggers"]
        user = found[workloads[scaled["spec"]["scaleTargetRef"]["name"]]]
        assert user.allows(Operation.DESCRIBE, Resource.GROUP, trigger["metadata"]["consumerGroup"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_topic_the_code_uses_is_a_kafka_topic_fit_for_its_role(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    settings = k8s.topology_settings(k8s.TOPOLOGY_ENV)
    wanted = {
        t.name: t
        for t in TopicCatalog.from_settings(settings).physical_topics(
            changelog_sources(settings.app_id)
        )
    }
    topics = {t["spec"]["topicName"]: t for t in _objects(rendered[overlay], "KafkaTopic")}
    assert set(topics) == set(wanted)
    replicas, min_isr = DURABILITY[overlay]
    for name, topic in topics.items():
        spec, want = topic["spec"], wanted[name]
        assert topic["apiVersion"] == k8s.STRIMZI_API_VERSION
        assert topic["metadata"]["labels"][k8s.CLUSTER_LABEL] == k8s.KAFKA_CLUSTER
        assert spec["partitions"] == want.partitions, name
        assert (spec["replicas"], spec["config"]["min.insync.replicas"]) == (replicas, min_isr)
        assert {k: str(v) for k, v in spec["config"].items() if k != "min.insync.replicas"} == (
            want.configs
        ), name
        if want.role is Role.CHANGELOG:
            assert spec["config"]["cleanup.policy"] == "compact", name
    # Dead letters wait for a person: kept longer than what they come from.
    for name, topic in topics.items():
        source_name = name.removesuffix(DLQ_SUFFIX)
        # webhooks.dlq's source is no topic but the providers' requests.
        if wanted[name].role is Role.DEAD_LETTER and source_name in topics:
            source = topics[source_name]["spec"]["config"]
            if source["cleanup.policy"] == "compact":
                continue  # inventory.availability keeps each SKU's latest record anyway
            assert topic["spec"]["config"]["retention.ms"] > source["retention.ms"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_built_in_objects_validate_and_custom_ones_are_known(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    for doc in rendered[overlay]:
        group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
        if group in CUSTOM_API_GROUPS:
            assert doc["kind"] in {
                "KafkaTopic",
                "KafkaUser",
                "ScaledObject",
                "TriggerAuthentication",
                "ServiceMonitor",
                "PrometheusRule",
            }, doc["kind"]
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            first = str(error).splitlines()[0]
            raise AssertionError(f"{doc['kind']} {doc['metadata']['name']}: {first}") from None
    # Secrets are referenced, never part of the manifests.
    assert not _objects(rendered[overlay], "Secret")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_environment_variable_is_a_setting_and_parses(
    rendered: dict[str, list[dict[str, Any]]],
    overlay: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    variables = {env_variable(name) for name in Settings.model_fields}
    files = {f"{env_variable(name)}_FILE" for name in secret_fields()}
    docs = rendered[overlay]
    for workload, container in _workloads(docs):
        env = _container_env(docs, container)
        unknown = set(env) - variables - files
        assert not unknown, f"{workload['metadata']['name']}: not settings: {sorted(unknown)}"
        # The values parse as the process parses them.
        with monkeypatch.context() as patch:
            _settings_of(env, patch, tmp_path)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_and_config_files_come_from_mounts(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    for workload, container in _workloads(docs):
        env = _container_env(docs, container)
        for variable, path in env.items():
            if variable.endswith("_FILE"):
                source, key = _mounted_file(workload, container, path)
                assert source.startswith("secret/"), f"{variable} is not on a secret"
        if workload["kind"] == "StatefulSet":
            for setting, file in (
                ("finance_mapping", "finance.json"),
                ("routing_rules", "routing.json"),
            ):
                source, key = _mounted_file(workload, container, env[env_variable(setting)])
                assert key == file
                config_map = _one(docs, "ConfigMap", source.removeprefix("configMap/"))
                assert config_map["data"][file] == (REPO_ROOT / "config" / file).read_text()


def test_prod_talks_sasl_ssl_scram_as_strimzi_users(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    docs = rendered["prod"]
    users = {u["metadata"]["name"]: u for u in _objects(docs, "KafkaUser")}
    for workload, container in _workloads(docs):
        env = _container_env(docs, container)
        assert env["ERPBRIDGE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env["ERPBRIDGE_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
        user = env["ERPBRIDGE_KAFKA_SASL_USERNAME"]
        assert users[user]["spec"]["authentication"]["type"] == "scram-sha-512"
        assert users[user]["metadata"]["labels"][k8s.CLUSTER_LABEL] == k8s.KAFKA_CLUSTER
        password = env["ERPBRIDGE_KAFKA_SASL_PASSWORD_FILE"]
        assert _mounted_file(workload, container, password) == (f"secret/{user}", "password")
        ca = env["ERPBRIDGE_KAFKA_SSL_CA_FILE"]
        assert _mounted_file(workload, container, ca) == (
            f"secret/{k8s.KAFKA_CLUSTER}-cluster-ca-cert",
            "ca.crt",
        )
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"{k8s.KAFKA_CLUSTER}-kafka-bootstrap:9093"
    for overlay in OVERLAYS:
        for _, container in _workloads(rendered[overlay]):
            env = _container_env(rendered[overlay], container)
            assert "ERPBRIDGE_KAFKA_SASL_PASSWORD" not in env


def _pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    spec = workload["spec"]
    template = (
        spec["jobTemplate"]["spec"]["template"]
        if workload["kind"] == "CronJob"
        else spec["template"]
    )
    labels: dict[str, str] = template["metadata"]["labels"]
    return labels


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _port_of(url: str) -> int:
    parsed = urllib.parse.urlsplit(url)
    return parsed.port or {"http": 80, "https": 443}[parsed.scheme]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_isolate_every_workload_and_open_only_its_ports(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    """Each workload's pods are selected by a policy of each direction (so all else is
    denied); what is let in is a port its container declares, from Prometheus (every
    declared port) or the ingress controller; what is let out includes the Kafka port it
    connects to, and the ERP's port for the connector."""
    docs = rendered[overlay]
    policies = _objects(docs, "NetworkPolicy")
    for workload, container in _workloads(docs):
        name = workload["metadata"]["name"]
        selecting = [
            p for p in policies if _selects(p["spec"]["podSelector"], _pod_labels(workload))
        ]
        assert {t for p in selecting for t in p["spec"]["policyTypes"]} == {"Ingress", "Egress"}, (
            name
        )
        declared = {p["name"] for p in container.get("ports", [])}
        ingress = [rule for p in selecting for rule in p["spec"].get("ingress", [])]
        opened = {port["port"] for rule in ingress for port in rule["ports"]}
        assert opened == declared, name
        from_monitoring = {
            port["port"]
            for rule in ingress
            if any(
                peer.get("namespaceSelector", {}).get("matchLabels")
                == {"kubernetes.io/metadata.name": "monitoring"}
                for peer in rule["from"]
            )
            for port in rule["ports"]
        }
        assert from_monitoring == declared, name
        egress = [rule for p in selecting for rule in p["spec"].get("egress", [])]
        env = _container_env(docs, container)
        kafka_port = int(env["KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])
        to_brokers = {
            port["port"]
            for rule in egress
            if any(
                peer.get("podSelector", {}).get("matchLabels", {}).get(k8s.CLUSTER_LABEL)
                == k8s.KAFKA_CLUSTER
                for peer in rule["to"]
            )
            for port in rule["ports"]
        }
        assert kafka_port in to_brokers, name
        outside = {
            port["port"]
            for rule in egress
            if any("ipBlock" in peer for peer in rule["to"])
            for port in rule["ports"]
        }
        erp = env.get(env_variable("erp_url"))
        if erp is not None:
            assert _port_of(erp) in outside, name
        if workload["kind"] == "StatefulSet":
            assert not outside, "the worker talks to Kafka only"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_statefulset_runs_as_the_code_expects(
    rendered: dict[str, list[dict[str, Any]]],
    overlay: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    docs = rendered[overlay]
    (worker,) = _objects(docs, "StatefulSet")
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["args"][0] == "worker"
    env = _container_env(docs, container)
    settings = _settings_of(env, monkeypatch, tmp_path)
    assert settings.group_instance_id == POD_NAME
    assert settings.create_topics is False
    assert settings.web_host == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert set(ports.values()) == {settings.web_port}
    for probe, path in (
        ("startupProbe", LIVENESS_PATH),
        ("livenessProbe", LIVENESS_PATH),
        ("readinessProbe", READINESS_PATH),
    ):
        assert container[probe]["httpGet"]["path"] == path
        assert ports[container[probe]["httpGet"]["port"]] == settings.web_port
    startup = container["startupProbe"]
    # A table restored into an empty volume may take many minutes.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 20 * 60
    # RocksDB on a volume of its own per pod.
    (claim,) = worker["spec"]["volumeClaimTemplates"]
    data = [m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"]]
    assert [m["mountPath"] for m in data] == [str(settings.data_dir)]
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30
    for resources in ("requests", "limits"):
        assert set(container["resources"][resources]) == {"cpu", "memory"}
    # The headless service and the disruption budget select the worker's pods.
    labels = worker["spec"]["template"]["metadata"]["labels"]
    service = _one(docs, "Service", worker["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"].items() <= labels.items()
    (budget,) = _objects(docs, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_connectors_serve_health_on_their_own_ports(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    for name, verb, port_setting, host_setting in (
        ("erpbridge-connector", "erp", "connector_web_port", "connector_web_host"),
        ("erpbridge-webhooks", "webhooks", "webhook_web_port", "webhook_web_host"),
    ):
        connector = _one(docs, "Deployment", name)
        (container,) = connector["spec"]["template"]["spec"]["containers"]
        assert container["args"][:2] == ["connector", verb]
        env = _container_env(docs, container)
        port = int(env[env_variable(port_setting)])
        assert port == Settings.model_fields[port_setting].default
        assert env[env_variable(host_setting)] == "0.0.0.0"
        _serves_probes(container, port)


def _serves_probes(container: dict[str, Any], port: int) -> None:
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert set(ports.values()) == {port}
    assert container["livenessProbe"]["httpGet"]["path"] == LIVENESS_PATH
    assert container["readinessProbe"]["httpGet"]["path"] == READINESS_PATH
    for probe in ("livenessProbe", "readinessProbe"):
        assert ports[container[probe]["httpGet"]["port"]] == port


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscaling_on_lag_is_bounded_by_partitions(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    settings = k8s.topology_settings(k8s.TOPOLOGY_ENV)
    partitions = {
        t["spec"]["topicName"]: t["spec"]["partitions"] for t in _objects(docs, "KafkaTopic")
    }
    (worker,) = _objects(docs, "StatefulSet")
    connector = _one(docs, "Deployment", "erpbridge-connector")
    (connector_container,) = connector["spec"]["template"]["spec"]["containers"]
    target = _container_env(docs, connector_container).get(
        env_variable("erp_target"), Settings.model_fields["erp_target"].default
    )
    bounds = {
        worker["metadata"]["name"]: (
            settings.app_id,
            max(partitions[settings.topic_prefix + name] for name in AGENT_SOURCES),
        ),
        connector["metadata"]["name"]: (
            connector_group(settings.app_id, target),
            partitions[settings.topic_prefix + ERP_COMMANDS],
        ),
    }
    scaled = _objects(docs, "ScaledObject")
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled} == set(bounds)
    authentications = {a["metadata"]["name"]: a for a in _objects(docs, "TriggerAuthentication")}
    for scaled_object in scaled:
        spec = scaled_object["spec"]
        ref = spec["scaleTargetRef"]
        _one(docs, ref["kind"], ref["name"])
        group, bound = bounds[ref["name"]]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= bound
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == group
        assert trigger["metadata"]["allowIdleConsumers"] == "false"
        workload = _one(docs, ref["kind"], ref["name"])
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        env = _container_env(docs, container)
        assert trigger["metadata"]["bootstrapServers"] == env["KAFKA_BOOTSTRAP_SERVERS"]
        if env.get("ERPBRIDGE_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT") == "SASL_SSL":
            assert trigger["metadata"]["sasl"] == "scram_sha512"
            assert trigger["metadata"]["tls"] == "enable"
            auth = authentications[trigger["authenticationRef"]["name"]]["spec"]
            refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["secretTargetRef"]}
            user = env["ERPBRIDGE_KAFKA_SASL_USERNAME"]
            assert refs == {
                "password": (user, "password"),
                "ca": (f"{k8s.KAFKA_CLUSTER}-cluster-ca-cert", "ca.crt"),
            }
            (username,) = auth["env"]
            assert username["parameter"] == "username"
            assert username["containerName"] == container["name"]
            assert env[username["name"]] == user
        else:
            assert "authenticationRef" not in trigger


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_scrapes_metrics_and_rules_use_exported_names(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    docs = rendered[overlay]
    exported = exported_metric_names()
    monitors = _objects(docs, "ServiceMonitor")
    scraped = set()
    for monitor in monitors:
        selector = monitor["spec"]["selector"]["matchLabels"]
        (service,) = [
            s
            for s in _objects(docs, "Service")
            if selector.items() <= s["metadata"]["labels"].items()
        ]
        ports = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["path"] == METRICS_PATH
            assert endpoint["port"] in ports
            assert endpoint["interval"] == "15s"
        scraped.add(service["metadata"]["name"])
    assert scraped == {s["metadata"]["name"] for s in _objects(docs, "Service")}
    (rules,) = _objects(docs, "PrometheusRule")
    alerts = [rule for group in rules["spec"]["groups"] for rule in group["rules"]]
    used = set().union(*(_metric_names(rule["expr"]) for rule in alerts))
    assert used <= exported, sorted(used - exported)
    (dashboard,) = [
        c
        for c in _objects(docs, "ConfigMap")
        if c["metadata"].get("labels", {}).get("grafana_dashboard")
    ]
    (content,) = dashboard["data"].values()
    panels = json.loads(content)["panels"]
    exprs = [target["expr"] for panel in panels for target in panel["targets"]]
    used = set().union(*(_metric_names(expr) for expr in exprs))
    assert used <= exported, sorted(used - exported)
    # Every family the processes export is on the dashboard.
    assert used == exported, sorted(exported - used)


SCRAPE_SECONDS = 15
"""The ServiceMonitors' interval (checked above)."""
ALERTED = {
    "failed ERP commands": {"erpbridge_erp_commands_failed_total"},
    "dead-letter growth": {"erpbridge_events_dead_lettered_total"},
    "consumer lag": {"erpbridge_consumer_lag"},
    "oldest open reconciliation alert": {"erpbridge_reconciliation_alert_oldest_open_seconds"},
    "ERP command success rate": {
        "erpbridge_erp_commands_acknowledged_total",
        "erpbridge_erp_commands_failed_total",
    },
}


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([smh])", duration))


def test_each_alert_fires_within_a_minute_of_its_condition(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    """A condition shows in a sample after at most one scrape, in a rule's result after at
    most one evaluation, then the alert waits `for`; the promtool test below runs the
    expressions themselves."""
    (rules,) = _objects(rendered["prod"], "PrometheusRule")
    alerts = []
    for group in rules["spec"]["groups"]:
        evaluation = _seconds(group["interval"])
        for rule in group["rules"]:
            delay = SCRAPE_SECONDS + evaluation + _seconds(rule.get("for", "0s"))
            assert delay <= 60, f"{rule['alert']} may fire {delay} s after its condition"
            assert rule["labels"]["severity"] in ("warning", "critical")
            assert rule["annotations"]["summary"]
            alerts.append(rule)
    for condition, families in ALERTED.items():
        assert any(families <= _metric_names(rule["expr"]) for rule in alerts), condition
    (success,) = [r for r in alerts if "acknowledged" in r["expr"]]
    assert re.search(r"<\s*0\.995\s*$", success["expr"].strip())


def test_promtool_shows_each_alert_silent_before_its_condition_and_firing_within_a_minute(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """deploy/k8s/alert-tests.yaml: promtool's unit tests of the rendered rules."""
    (rules,) = _objects(rendered["prod"], "PrometheusRule")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules["spec"]))
    cases = yaml.safe_load((k8s.DEPLOY_DIR / "alert-tests.yaml").read_text())
    (tmp_path / "alert-tests.yaml").write_text(yaml.safe_dump(cases))
    tested = {check["alertname"] for case in cases["tests"] for check in case["alert_rule_test"]}
    alerts = {rule["alert"] for group in rules["spec"]["groups"] for rule in group["rules"]}
    assert tested == alerts, f"alerts without a promtool test: {alerts - tested}"
    for args in (["check", "rules", "rules.yaml"], ["test", "rules", "alert-tests.yaml"]):
        result = subprocess.run(
            [str(promtool()), *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
