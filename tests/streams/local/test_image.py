"""The container image as `make image` builds it (once per inputs' hash), run the way
Kubernetes runs it: as its own user, from its entrypoint, against a real broker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tarfile
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement

from streams.local.image import LOCK, NAME, Buildah, BuiltImage, build, version
from streams.local.kafka import Broker
from streams.ops.health import READINESS_PATH
from streams.ops.settings import REPO_ROOT, Settings, env_variable
from tests.support import free_port, wait_for

KUSTOMIZATION = REPO_ROOT / "deploy" / "k8s" / "base" / "kustomization.yaml"
WORKER_MANIFEST = REPO_ROOT / "deploy" / "k8s" / "base" / "worker.yaml"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> BuiltImage:
    return build(output_dir=tmp_path_factory.mktemp("image"))


@pytest.fixture(scope="module")
def buildah() -> Buildah:
    return Buildah(os.environ)


@pytest.fixture(scope="module")
def container(image: BuiltImage, buildah: Buildah) -> Iterator[str]:
    name = buildah.run("from", "--quiet", image.reference).strip()
    yield name
    buildah.run("rm", name)


def _pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, pinned = line.split("==")
            pins[_canonical(name)] = pinned
    return pins


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def test_the_lock_pins_a_version_of_every_dependency_that_pyproject_allows() -> None:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    for dependency in map(Requirement, project["dependencies"]):
        pinned = pins.get(_canonical(dependency.name))
        assert pinned is not None, f"{dependency.name} is not in {LOCK.name}: run `make lock`"
        assert dependency.specifier.contains(pinned), (
            f"{dependency.name}=={pinned} in {LOCK.name} is outside {dependency}: run `make lock`"
        )


def test_deploy_k8s_runs_the_version_the_build_tags() -> None:
    images = yaml.safe_load(KUSTOMIZATION.read_text())["images"]
    assert images == [{"name": NAME, "newTag": version()}]


def test_the_archive_is_an_oci_layout_of_the_printed_digest(image: BuiltImage) -> None:
    with tarfile.open(image.archive) as archive:
        layout = json.load(archive.extractfile("oci-layout"))  # type: ignore[arg-type]
        index = json.load(archive.extractfile("index.json"))  # type: ignore[arg-type]
    assert layout["imageLayoutVersion"] == "1.0.0"
    (manifest,) = index["manifests"]
    assert manifest["digest"] == image.digest
    assert manifest["annotations"]["org.opencontainers.image.ref.name"] == image.reference
    assert image.archive_bytes == image.archive.stat().st_size


def test_the_image_runs_as_the_manifests_user_with_the_data_directory_a_volume(
    image: BuiltImage, buildah: Buildah
) -> None:
    config: dict[str, Any] = buildah.image_config(image.reference)
    (worker,) = (
        doc["spec"]["template"]["spec"]
        for doc in yaml.safe_load_all(WORKER_MANIFEST.read_text())
        if doc["kind"] == "StatefulSet"
    )
    uid = worker["securityContext"]["runAsUser"]
    assert config["User"] == f"{uid}:{uid}"
    assert config["Entrypoint"] == ["erpbridge"]
    env = dict(item.split("=", 1) for item in config["Env"])
    data_dir = Path(env[env_variable("data_dir")])
    assert any(data_dir.is_relative_to(volume) for volume in config["Volumes"])
    defaults = Settings.model_fields
    ports = {
        f"{defaults[name].default}/tcp"
        for name in ("web_port", "connector_web_port", "webhook_web_port")
    }
    assert set(config["ExposedPorts"]) == ports
    # Every variable the image sets is a setting the processes read.
    settings = {env_variable(name) for name in Settings.model_fields}
    assert {name for name in env if name.startswith("ERPBRIDGE_")} <= settings


def test_the_entrypoint_answers_help_as_the_image_user(
    image: BuiltImage, buildah: Buildah, container: str
) -> None:
    config: dict[str, Any] = buildah.image_config(image.reference)
    printed = buildah.run("run", container, "--", *config["Entrypoint"], "--help")
    assert "Usage: erpbridge" in printed
    for command in ("worker", "connector", "produce", "tail", "export"):
        assert f"\n  {command} " in printed, command


def _status(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{READINESS_PATH}", timeout=2) as r:
            return int(r.status)
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def _entrypoint_process(session: int) -> int:
    """The image's erpbridge process among buildah's in `session`."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:  # ended meanwhile
            continue
        ours = not argv[0].startswith(b"buildah")  # not buildah's own exec helper
        if int(fields[3]) == session and ours and b"/opt/erpbridge/bin/erpbridge" in argv:
            return int(stat.parent.name)
    raise AssertionError("the image's erpbridge process is not running")


def test_the_worker_from_the_image_gets_ready_on_the_broker_and_stops_on_sigterm(
    image: BuiltImage,
    buildah: Buildah,
    container: str,
    kafka_broker: Broker,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    config: dict[str, Any] = buildah.image_config(image.reference)
    port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        env_variable("topic_prefix"): topic_prefix,
        env_variable("app_id"): f"{topic_prefix}app",
        env_variable("partitions"): "2",
        env_variable("web_port"): str(port),
    }
    flags = [f"--env={name}={value}" for name, value in env.items()]
    entrypoint = config["Entrypoint"]
    # As an SRE without Strimzi would: the topics first, from the same image.
    buildah.run("run", *flags, container, "--", *entrypoint, "topics", "create")
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            buildah.command("run", *flags, container, "--", *entrypoint, "worker"),
            env=buildah.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: worker.poll() is not None or _status(port) == 200,
            timeout=120,
            what=f"the image's worker ready on :{port} (log: {log_path})",
        )
        assert worker.poll() is None, log_path.read_text()[-3000:]
        # Kubernetes stops a pod with SIGTERM to its process (buildah would kill it instead
        # of passing the signal on): the worker closes its tables and exits 0.
        os.kill(_entrypoint_process(worker.pid), signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, log_path.read_text()[-3000:]
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
    written = buildah.run("run", container, "--", "ls", "/var/lib/erpbridge/data")
    assert written.strip(), "the worker kept no state in its data directory"
