"""A real Kafka broker for development and tests, whatever the machine offers.

Selection order: a broker named by ``KAFKA_BOOTSTRAP_SERVERS``; else a testcontainers
broker when a Docker engine answers; else a single-node KRaft broker assembled from
Maven Central jars and run with ``java``. The choice itself is the pure function
`choose_broker_kind`, so it can be tested with probes instead of a machine.
"""

from __future__ import annotations

import atexit
import base64
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import time
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

KAFKA_VERSION = "4.4.0"
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"

BrokerKind = Literal["external", "docker", "local-jvm"]

_log = logging.getLogger(__name__)

# Kafka brings slf4j-api 1.7 and log4j2 but no binding between them: without one the
# broker logs nothing at all, and readiness is read from its log.
_MAVEN_DEPENDENCIES = (
    ("org.apache.kafka", "kafka_2.13", KAFKA_VERSION),
    ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.25.5"),
)
# testcontainers' KafkaContainer drives Confluent images; Confluent Platform 8.x ships Kafka 4.x.
# Not exercised on machines without a Docker engine.
_DOCKER_IMAGE = "confluentinc/cp-kafka:8.1.0"
_READY_LINE = "Kafka Server started"
_START_TIMEOUT_S = 90.0
_STOP_TIMEOUT_S = 30.0
_MAVEN_MISSING = "install Apache Maven (mvn not on PATH) to fetch the Kafka jars once"

# Broker behaviour every kind shares: one node, and apps that must create their own topics.
# One offsets partition: creating the default fifty slows the first group join.
_POLICY_PROPERTIES: Mapping[str, str] = {
    "auto.create.topics.enable": "false",
    "num.partitions": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
}


class BrokerUnavailable(RuntimeError):
    """No broker can be provided; the message says what to install or set."""


@dataclass(frozen=True)
class SecureListeners:
    """Key material for a broker's SASL_SSL listener (SCRAM-SHA-512 users) and SSL
    listener (a client certificate signed by `ca_file` required), all PEM files.

    `key_file` must hold an unencrypted PKCS#8 key ("BEGIN PRIVATE KEY"), as Kafka's PEM
    key store reads it; `cert_file` is the broker's certificate (chain).
    """

    ca_file: Path
    cert_file: Path
    key_file: Path
    scram_users: Mapping[str, str]
    authorizer: bool = False
    """Kafka's ACL authorizer on: the secure listeners' principals may do only what ACLs
    allow. PLAINTEXT stays the super user's door (User:ANONYMOUS: the controller and
    inter-broker traffic, and whoever sets up topics and ACLs), so tests of principals must
    connect through the secure listeners."""


@dataclass(frozen=True)
class Broker:
    """Where clients connect; `log_path` is the broker's log when this process runs it.

    With secure listeners, `sasl_ssl_bootstrap` and `ssl_bootstrap` are where they listen;
    `bootstrap_servers` stays PLAINTEXT.
    """

    bootstrap_servers: str
    kind: BrokerKind
    log_path: Path | None
    sasl_ssl_bootstrap: str | None = None
    ssl_bootstrap: str | None = None
    stop: Callable[[], None] | None = None
    """Stops a broker this process runs before its context ends (a test of a lost broker)."""
    restart: Callable[[], None] | None = None
    """Restarts a broker this process runs, same ports and data (a test of a broker restart)."""


@dataclass(frozen=True)
class Probes:
    """Questions about the machine, asked lazily and only as far as the selection needs."""

    docker_answers: Callable[[], bool]
    java_found: Callable[[], bool]
    maven_found: Callable[[], bool]
    jars_cached: Callable[[], bool]


def choose_broker_kind(env: Mapping[str, str], probes: Probes) -> BrokerKind:
    if env.get(BOOTSTRAP_ENV, "").strip():
        return "external"
    if probes.docker_answers():
        return "docker"
    missing: list[str] = []
    if not probes.java_found():
        missing.append(JAVA_MISSING)
    # Maven only fetches the jars once; a filled cache runs without it.
    if not probes.jars_cached() and not probes.maven_found():
        missing.append(_MAVEN_MISSING)
    if missing:
        raise BrokerUnavailable(
            "no Kafka broker available: "
            + "; ".join(missing)
            + f"; or start a Docker engine; or set {BOOTSTRAP_ENV} to a running broker's host:port"
        )
    return "local-jvm"


def libs_dir(env: Mapping[str, str]) -> Path:
    return cache_dir(env) / f"kafka-{KAFKA_VERSION}" / "libs"


def default_probes(env: Mapping[str, str]) -> Probes:
    return Probes(
        docker_answers=lambda: _docker_answers(env),
        java_found=lambda: java(env) is not None,
        maven_found=lambda: maven(env) is not None,
        jars_cached=lambda: is_cached(libs_dir(env)),
    )


@contextmanager
def running_broker(
    *,
    env: Mapping[str, str] | None = None,
    keep_log: Callable[[], bool] | None = None,
    extra_properties: Mapping[str, str] | None = None,
    secure: SecureListeners | None = None,
) -> Iterator[Broker]:
    """Yield a broker that accepts clients, and stop whatever was started for it on exit.

    `keep_log` is asked at stop time whether the local broker's log is worth keeping
    (a test failed); `extra_properties` are broker properties applied last. `secure`
    opens a SASL_SSL and an SSL listener beside PLAINTEXT; only a broker run here can be
    set up so, so it is always the local JVM one then.
    """
    env = os.environ if env is None else env
    extra = dict(extra_properties or {})
    if secure is not None:
        if java(env) is None:
            raise BrokerUnavailable(f"a broker with TLS and SCRAM listeners needs {JAVA_MISSING}")
        with _local_jvm_broker(env, extra, keep_log, secure) as broker:
            yield broker
        return
    kind = choose_broker_kind(env, default_probes(env))
    if kind == "external":
        yield Broker(env[BOOTSTRAP_ENV].strip(), "external", None)
    elif kind == "docker":
        with _docker_broker(extra) as broker:
            yield broker
    else:
        with _local_jvm_broker(env, extra, keep_log) as broker:
            yield broker


def _docker_answers(env: Mapping[str, str]) -> bool:
    try:
        import docker

        # Short timeout: where no engine runs, selection must move on at once.
        client = docker.from_env(timeout=2, environment=dict(env))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # no SDK, no socket, refused, timed out: all mean "no Docker"
        return False


@contextmanager
def _docker_broker(extra: Mapping[str, str]) -> Iterator[Broker]:
    from testcontainers.community.kafka import KafkaContainer

    container = KafkaContainer(_DOCKER_IMAGE).with_kraft()
    for key, value in {**_POLICY_PROPERTIES, **extra}.items():
        container.with_env(_confluent_env_name(key), value)
    with container:
        yield Broker(container.get_bootstrap_server(), "docker", None)


def _confluent_env_name(key: str) -> str:
    """Confluent images read `a.b_c-d` from KAFKA_A_B__C___D."""
    return "KAFKA_" + key.upper().replace("_", "__").replace("-", "___").replace(".", "_")


def ensure_jars(env: Mapping[str, str]) -> Path:
    """The broker's jars, fetched with Maven on first use into the cache."""
    libs = libs_dir(env)
    if is_cached(libs):
        return libs
    mvn = maven(env)
    if mvn is None:
        raise BrokerUnavailable(_MAVEN_MISSING)

    def fetch(staged: Path, scratch: Path) -> None:
        pom = scratch / "pom.xml"
        pom.write_text(_pom_xml(), encoding="utf-8")
        _log.info("fetching Kafka %s jars with Maven into %s", KAFKA_VERSION, libs)
        run_maven(
            mvn,
            ["-f", str(pom), "dependency:copy-dependencies", "-DincludeScope=runtime",
             f"-DoutputDirectory={staged}"],
            cwd=scratch,
            what=f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}",
            unavailable=BrokerUnavailable,
        )  # fmt: skip
        if not staged.is_dir():
            raise BrokerUnavailable(f"Maven fetched no jars for Kafka {KAFKA_VERSION}")

    return fill_cache_once(libs, fetch, BrokerUnavailable)


def _pom_xml() -> str:
    dependencies = "\n".join(
        f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version></dependency>"
        for group, artifact, version in _MAVEN_DEPENDENCIES
    )
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.erpbridge</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>{KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""


def _cluster_id() -> str:
    # May start with "-": pass it as --cluster-id=<id>, never as a separate argument.
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).decode("ascii").rstrip("=")


def _server_properties(
    ports: Mapping[str, int],
    controller_port: int,
    data_dir: Path,
    extra: Mapping[str, str],
    security: Mapping[str, str],
) -> str:
    """`ports` by listener name, which is also its security protocol (PLAINTEXT first)."""
    advertised = ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items())
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"{advertised},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": advertised,
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": ",".join(
            ["CONTROLLER:PLAINTEXT", *(f"{name}:{name}" for name in ports)]
        ),
        "log.dirs": str(data_dir),
        # Few threads: the broker shares two cores with the tests and their workers.
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        **_POLICY_PROPERTIES,
        **security,
        **extra,
    }
    return "".join(f"{key}={_escape(value)}\n" for key, value in properties.items())


def _security_properties(secure: SecureListeners, run_dir: Path) -> dict[str, str]:
    """TLS from PEM files on both secure listeners, SCRAM-SHA-512 on SASL_SSL, and a client
    certificate required on SSL. Without the authorizer every authenticated client may do
    anything; the controller and inter-broker traffic stay PLAINTEXT on loopback."""
    # Kafka's PEM key store is one file: the private key, then the certificate chain.
    key_store = run_dir / "broker-keystore.pem"
    key_store.write_text(
        secure.key_file.read_text(encoding="ascii") + secure.cert_file.read_text(encoding="ascii"),
        encoding="ascii",
    )
    key_store.chmod(0o600)
    authorizer = (
        {
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            # Every PLAINTEXT client is ANONYMOUS, the broker itself included.
            "super.users": "User:ANONYMOUS",
        }
        if secure.authorizer
        else {}
    )
    return {
        **authorizer,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(key_store),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(secure.ca_file),
        "listener.name.ssl.ssl.client.auth": "required",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        ),
    }


def _scram_arguments(secure: SecureListeners | None) -> list[str]:
    """StorageTool writes these users into the cluster metadata as it formats: no admin
    round trip after start."""
    if secure is None:
        return []
    # StorageTool splits `[name=..,password=..]` at every comma, quoted or not.
    if any("," in text for user in secure.scram_users.items() for text in user):
        raise ValueError("SCRAM user names and passwords of the local broker cannot hold ','")
    return [
        f"--add-scram=SCRAM-SHA-512=[name={name},password={password}]"
        for name, password in secure.scram_users.items()
    ]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


# The JVM's stdout goes to the log file, so the log and any JVM failure land in one place.
_LOG4J2_PROPERTIES = """\
status = warn
# Kafka's own shutdown hook logs; log4j2's would stop logging before it runs.
shutdownHook = disable
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
"""


class _LocalBroker:
    """One `java` broker process with its temporary data directory."""

    def __init__(
        self,
        launch: Callable[[], subprocess.Popen[bytes]],
        run_dir: Path,
        ports: Mapping[str, int],
        log_path: Path,
    ) -> None:
        self._launch = launch
        self.process = launch()
        self.run_dir = run_dir
        self.addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        self.bootstrap = self.addresses["PLAINTEXT"]
        self.log_path = log_path

    def stop(self) -> None:
        # Its data directory goes with it, so nothing needs the clean shutdown, which closes
        # every partition's log: 15 s and more once a test session made thousands.
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def restart(self) -> None:
        """Stop the broker as an operator would (SIGTERM, a controlled shutdown) and start it
        again on the same ports with the same data; return once it serves clients."""
        started = self.starts()
        stop_process(self.process, _STOP_TIMEOUT_S)
        self.process = self._launch()
        _wait_until_ready(self, self.log_path, after=started)

    def starts(self) -> int:
        """How many times the broker logged its start."""
        return self.log_path.read_text(errors="replace").count(_READY_LINE)


@contextmanager
def _local_jvm_broker(
    env: Mapping[str, str],
    extra: Mapping[str, str],
    keep_log: Callable[[], bool] | None,
    secure: SecureListeners | None = None,
) -> Iterator[Broker]:
    java_path = java(env)
    if java_path is None:
        raise BrokerUnavailable(JAVA_MISSING)
    libs = ensure_jars(env)
    log_path = new_log(env, "kafka")
    ready = False

    def keep() -> bool:
        # A broker that never became ready keeps its log: the error names it.
        return not ready or (keep_log is not None and keep_log())

    with ExitStack() as stack:
        stack.callback(dispose_log, log_path, keep, "Kafka broker")
        broker = _start_java(java_path, libs, log_path, extra, secure)
        stack.callback(broker.stop)
        # atexit covers an interpreter that exits without unwinding this generator.
        atexit.register(broker.stop)
        stack.callback(atexit.unregister, broker.stop)
        _wait_until_ready(broker, log_path)
        ready = True
        yield Broker(
            broker.bootstrap,
            "local-jvm",
            log_path,
            sasl_ssl_bootstrap=broker.addresses.get("SASL_SSL"),
            ssl_bootstrap=broker.addresses.get("SSL"),
            stop=broker.stop,
            restart=broker.restart,
        )


def _start_java(
    java_path: str,
    libs: Path,
    log_path: Path,
    extra: Mapping[str, str],
    secure: SecureListeners | None,
) -> _LocalBroker:
    run_dir = Path(tempfile.mkdtemp(prefix="erpbridge-kafka-"))
    try:
        names = ["PLAINTEXT", *(["SASL_SSL", "SSL"] if secure else [])]
        controller_port, *listener_ports = free_ports(len(names) + 1)
        ports = dict(zip(names, listener_ports, strict=True))
        security = _security_properties(secure, run_dir) if secure else {}
        server_properties = run_dir / "server.properties"
        server_properties.write_text(
            _server_properties(ports, controller_port, run_dir / "data", extra, security),
            encoding="utf-8",
        )
        log_config = run_dir / "log4j2.properties"
        log_config.write_text(_LOG4J2_PROPERTIES, encoding="utf-8")
        jvm = [
            java_path,
            "-Xms256m",
            # Kafka's own default heap: a test session's broker holds every test's topics
            # (some 130 partitions each), which outgrew 512 MB (OutOfMemoryError, 2026-12-07).
            "-Xmx1g",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log_config}",
            "-cp",
            str(libs / "*"),
        ]
        with log_path.open("ab") as log:
            formatted = subprocess.run(
                [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={_cluster_id()}",
                 "-c", str(server_properties), *_scram_arguments(secure)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                timeout=_START_TIMEOUT_S, check=False,
            )  # fmt: skip
            if formatted.returncode != 0:
                raise RuntimeError(
                    f"formatting Kafka storage failed (exit {formatted.returncode}), "
                    f"log {log_path}:\n{log_tail(log_path)}"
                )

        def launch() -> subprocess.Popen[bytes]:
            with log_path.open("ab") as log:
                return subprocess.Popen(
                    [*jvm, "kafka.Kafka", str(server_properties)],
                    stdin=subprocess.DEVNULL,
                    # Out of the terminal's process group: Ctrl-C reaches us, and we stop it
                    # after the processes that still talk to it.
                    start_new_session=True,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )

        return _LocalBroker(launch, run_dir, ports, log_path)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise


_READY_GROUP = "erpbridge-broker-ready"
"""A group nobody joins, looked up to tell that the group coordinator is ready."""


def _wait_until_ready(broker: _LocalBroker, log_path: Path, after: int = 0) -> None:
    """Return once the broker logged a start (more than `after` of them), serves metadata to
    a real client and coordinates consumer groups."""
    from confluent_kafka.admin import AdminClient

    deadline = time.monotonic() + _START_TIMEOUT_S
    started = False
    while time.monotonic() < deadline:
        if broker.process.poll() is not None:
            raise RuntimeError(
                f"Kafka broker exited with {broker.process.returncode} while starting, "
                f"log {log_path}:\n{log_tail(log_path)}"
            )
        started = started or broker.starts() > after
        if started:
            # A probe: what fails is tried again, so librdkafka's own log stays quiet.
            admin = AdminClient({"bootstrap.servers": broker.bootstrap, "log_level": 0})
            try:
                admin.list_topics(timeout=5)
                # The first group request makes the broker create its offsets topic, and
                # until it has, every consumer's join fails with an error its client logs:
                # a broker is ready once a group can be looked up.
                admin.describe_consumer_groups([_READY_GROUP], request_timeout=5)[
                    _READY_GROUP
                ].result()
                return
            except Exception:  # listener up before metadata: try again until the deadline
                pass
        time.sleep(0.2)
    raise RuntimeError(
        f"Kafka broker not ready after {_START_TIMEOUT_S:.0f}s, "
        f"log {log_path}:\n{log_tail(log_path)}"
    )
