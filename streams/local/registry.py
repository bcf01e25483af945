"""A real Confluent-compatible schema registry for development and tests.

Selection order: a registry named by ``ERPBRIDGE_SCHEMA_REGISTRY_URL``; else Apicurio
Registry (in-memory storage) fetched once from Maven Central and run with ``java``,
serving the Confluent API under ``/apis/ccompat/v7`` with BACKWARD compatibility, the
rule a production registry enforces for our subjects.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from streams.local.jvm import (
    JAVA_MISSING,
    cache_dir,
    dispose_log,
    fill_cache_once,
    free_ports,
    is_cached,
    java,
    log_tail,
    maven,
    new_log,
    run_maven,
    stop_process,
)

APICURIO_VERSION = "3.0.9"
REGISTRY_URL_ENV = "ERPBRIDGE_SCHEMA_REGISTRY_URL"

RegistryKind = Literal["external", "local-jvm"]

_log = logging.getLogger(__name__)

_ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
_RUNNER_JAR = f"apicurio-registry-app-{APICURIO_VERSION}-runner.jar"
_CCOMPAT_PATH = "/apis/ccompat/v7"
_START_TIMEOUT_S = 90.0
_STOP_TIMEOUT_S = 30.0
_MAVEN_MISSING = "install Apache Maven (mvn not on PATH) to fetch Apicurio Registry once"


class RegistryUnavailable(RuntimeError):
    """No schema registry can be provided; the message says what to install or set."""


@dataclass(frozen=True)
class Registry:
    """The Confluent-compatible base URL; `log_path` is the registry's log when this process runs it."""

    url: str
    kind: RegistryKind
    log_path: Path | None


def registry_dir(env: Mapping[str, str]) -> Path:
    return cache_dir(env) / f"apicurio-registry-{APICURIO_VERSION}"


@contextmanager
def running_registry(
    *, env: Mapping[str, str] | None = None, keep_log: Callable[[], bool] | None = None
) -> Iterator[Registry]:
    """Yield a registry that accepts clients, and stop whatever was started for it on exit.

    `keep_log` is asked at stop time whether the local registry's log is worth keeping.
    """
    env = os.environ if env is None else env
    external = env.get(REGISTRY_URL_ENV, "").strip()
    if external:
        yield Registry(external, "external", None)
        return
    java_path = java(env)
    missing = [] if java_path is not None else [JAVA_MISSING]
    # Maven only fetches the registry once; a filled cache runs without it.
    if not is_cached(registry_dir(env)) and maven(env) is None:
        missing.append(_MAVEN_MISSING)
    if java_path is None or missing:
        raise RegistryUnavailable(
            "no schema registry available: "
            + "; ".join(missing)
            + f"; or set {REGISTRY_URL_ENV} to a running registry's URL"
        )
    with _local_registry(env, java_path, keep_log) as registry:
        yield registry


def ensure_registry(env: Mapping[str, str]) -> Path:
    """The unpacked Apicurio Registry, fetched with Maven on first use into the cache."""
    target = registry_dir(env)
    if is_cached(target):
        return target
    mvn = maven(env)
    if mvn is None:
        raise RegistryUnavailable(_MAVEN_MISSING)

    def fetch(staged: Path, scratch: Path) -> None:
        downloads = scratch / "downloads"
        _log.info("fetching Apicurio Registry %s with Maven into %s", APICURIO_VERSION, target)
        run_maven(
            mvn,
            ["dependency:copy", f"-Dartifact={_ARTIFACT}", f"-DoutputDirectory={downloads}"],
            cwd=scratch,  # dependency:copy needs no project; keep a stray pom.xml out of it
            what=_ARTIFACT,
            unavailable=RegistryUnavailable,
        )
        archives = sorted(downloads.glob("*.tar.gz")) if downloads.is_dir() else []
        if len(archives) != 1:
            raise RegistryUnavailable(f"Maven fetched {len(archives)} archives of {_ARTIFACT}")
        with tarfile.open(archives[0]) as archive:
            archive.extractall(staged, filter="data")
        if not (staged / _RUNNER_JAR).is_file():
            raise RegistryUnavailable(f"{archives[0].name} holds no {_RUNNER_JAR}")

    return fill_cache_once(target, fetch, RegistryUnavailable)


@contextmanager
def _local_registry(
    env: Mapping[str, str], java_path: str, keep_log: Callable[[], bool] | None
) -> Iterator[Registry]:
    app = ensure_registry(env)
    log_path = new_log(env, "schema-registry")
    ready = False

    def keep() -> bool:
        # A registry that never became ready keeps its log: the error names it.
        return not ready or (keep_log is not None and keep_log())

    with ExitStack() as stack:
        stack.callback(dispose_log, log_path, keep, "Schema registry")
        (port,) = free_ports(1)
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [
                    java_path,
                    # Small and quick to start: it holds a few test schemas in memory.
                    "-Xmx256m",
                    "-XX:+UseSerialGC",
                    "-XX:TieredStopAtLevel=1",
                    "-Dquarkus.http.host=127.0.0.1",
                    f"-Dquarkus.http.port={port}",
                    # The management interface (health, metrics) is unused; any free port.
                    "-Dquarkus.management.host=127.0.0.1",
                    "-Dquarkus.management.port=0",
                    "-jar",
                    str(app / _RUNNER_JAR),
                ],
                stdin=subprocess.DEVNULL,
                # Out of the terminal's process group: Ctrl-C reaches us, and we stop it
                # after the processes that still talk to it.
                start_new_session=True,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=app,
            )

        def stop() -> None:
            stop_process(process, _STOP_TIMEOUT_S)

        stack.callback(stop)
        # atexit covers an interpreter that exits without unwinding this generator.
        atexit.register(stop)
        stack.callback(atexit.unregister, stop)
        url = f"http://127.0.0.1:{port}{_CCOMPAT_PATH}"
        _wait_until_ready(process, url, log_path)
        # Apicurio defaults to NONE; refuse incompatible schemas as a production registry does.
        _request("PUT", f"{url}/config", {"compatibility": "BACKWARD"})
        ready = True
        yield Registry(url, "local-jvm", log_path)


def _wait_until_ready(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RegistryUnavailable(
                f"schema registry exited with {process.returncode} while starting, "
                f"log {log_path}:\n{log_tail(log_path)}"
            )
        try:
            _request("GET", f"{url}/subjects")
            return
        except OSError:  # refused until the HTTP listener is up, 503 while it starts
            time.sleep(0.25)
    raise RegistryUnavailable(
        f"schema registry not ready after {_START_TIMEOUT_S:.0f}s, "
        f"log {log_path}:\n{log_tail(log_path)}"
    )


def _request(method: str, url: str, body: object = None) -> None:
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
    )
    with urllib.request.urlopen(request, timeout=5):
        pass
