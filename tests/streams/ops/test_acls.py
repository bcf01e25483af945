"""Every principal on a real broker with Kafka's ACL authorizer on, as a SCRAM user over
SASL_SSL with exactly the ACLs streams.contracts.access gives it (applied through the Admin
API, as `erpbridge acls apply` does): each does its job through erpbridge's own code, and
is refused what it must not do with a message naming it and the operation."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported without __all__
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)
from pydantic import SecretStr

from connectors.erp.adapter import Document
from connectors.erp.master import CatalogItem, ErpCustomer, ListPrice
from connectors.erp.sink import ErpSink
from connectors.erp.source import MasterDataSource
from connectors.storefront.adapters import storefront_adapters
from connectors.storefront.sink import StorefrontSink
from connectors.webhooks.echoes import Echoes
from connectors.webhooks.payout_sync import Watermark, read_watermarks
from connectors.webhooks.publisher import Publisher
from connectors.webhooks.pushes import PushReader
from streams.contracts.access import (
    ANALYST,
    CONNECTOR,
    ERP_SOURCE,
    MEDUSA_SOURCE,
    PAYOUTS,
    PRODUCER,
    STOREFRONT,
    WEBHOOKS,
    WORKER,
    principals,
)
from streams.contracts.changelogs import changelog_sources
from streams.contracts.codec import Codec
from streams.contracts.groups import worker_group
from streams.contracts.topics import (
    AGENT_SOURCES,
    ALERTS,
    AVAILABILITY,
    ERP_CATALOG,
    ERP_COMMANDS,
    ERP_CUSTOMERS,
    ERP_RESULTS,
    ORDER_STATUS,
    ORDERS,
    PAYMENTS,
    PAYOUT_WATERMARKS,
    STOCK_PUSHES,
    STOREFRONT_RESULTS,
    TopicCatalog,
)
from streams.domain.commands import Command
from streams.local.kafka import Broker, SecureListeners, running_broker
from streams.local.medusa import Medusa
from streams.ops.acls import acl_bindings
from streams.ops.records import Outgoing, PartitionReader, Sender
from streams.ops.settings import Settings, WebhookRoute
from streams.ops.topic_admin import consumer_lag, ensure_topics
from streams.sample.generator import Catalogue
from tests.certificates import Authority
from tests.connectors.webhooks.doubles import WOO_KEY, WOO_SECRET, woocommerce_admin
from tests.streams.local.test_medusa import address
from tests.streams.topology.agents.pipeline import read_all
from tests.support import (
    EVENTS,
    STORE,
    RunningService,
    lines_of,
    run,
    settings_env,
    spawn_worker,
    wait_for,
)


@dataclass(frozen=True)
class AclKafka:
    broker: Broker
    ca: Path
    passwords: dict[str, str]
    admin: Settings
    """The topics' and ACLs' owner: PLAINTEXT, the broker's super user."""

    def as_user(self, user: str, **overrides: Any) -> Settings:
        assert self.broker.sasl_ssl_bootstrap is not None
        return self.admin.model_copy(
            update={
                "kafka_bootstrap_servers": self.broker.sasl_ssl_bootstrap,
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_username": user,
                "kafka_sasl_password": SecretStr(self.passwords[user]),
                "kafka_ssl_ca_file": self.ca,
                **overrides,
            }
        )


@pytest.fixture(scope="module")
def acl_kafka(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[AclKafka]:
    """One broker for the module: every principal a SCRAM user, the module's topics, and
    the principals' ACLs for them."""
    directory = tmp_path_factory.mktemp("acls")
    prefix = f"t-acls-{uuid.uuid4().hex[:8]}-"
    settings = Settings(
        topic_prefix=prefix,
        app_id=f"{prefix}app",
        partitions=2,
        session_timeout_seconds=6,
        data_dir=directory / "data",
        create_topics=False,
    )
    found = principals(settings)
    passwords = {p.user: f"scram-{uuid.uuid4().hex}" for p in found}
    ca = Authority(directory, "test-ca")
    issued = ca.issue("broker", server=True)
    listeners = SecureListeners(
        ca.cert_file, issued.cert_file, issued.key_file, passwords, authorizer=True
    )
    with running_broker(
        secure=listeners, keep_log=lambda: request.session.testsfailed > 0
    ) as broker:
        admin = settings.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap_servers})
        report = ensure_topics(
            admin.confluent_config(),
            TopicCatalog.from_settings(admin),
            changelogs=changelog_sources(admin.app_id),
        )
        assert report.ok, report
        applied = run(["acls", "apply"], _env(admin))
        assert applied.exit_code == 0, applied.output
        # The broker authorizes with the ACLs once its metadata has them.
        wanted = len(acl_bindings(found))
        wait_for(lambda: len(_acls_in_force(admin)) == wanted, timeout=30, what=f"{wanted} ACLs")
        yield AclKafka(broker, ca.cert_file, passwords, admin)


def _acls_in_force(settings: Settings) -> list[Any]:
    any_acl = AclBindingFilter(
        ResourceType.ANY,
        None,
        ResourcePatternType.ANY,
        None,
        None,
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    admin = AdminClient(settings.confluent_config())
    return list(admin.describe_acls(any_acl, request_timeout=10).result())


def _env(settings: Settings) -> dict[str, str | None]:
    return {
        **settings_env(settings),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "ERPBRIDGE_SCHEMA_REGISTRY_URL": None,
    }


def _tail(settings: Settings, topic: str) -> list[dict[str, Any]]:
    result = run(["tail", topic], _env(settings))
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def _refused(settings: Settings, args: list[str], message: str) -> None:
    result = run(args, _env(settings))
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_the_producer_writes_the_inputs_and_nothing_else(acl_kafka: AclKafka) -> None:
    producer = acl_kafka.as_user(PRODUCER)
    prefix = producer.topic_prefix
    produced = run(["produce", ORDERS, str(EVENTS / f"{ORDERS}.jsonl")], _env(producer))
    assert produced.exit_code == 0, produced.output
    assert f"produced {len(lines_of(ORDERS))} records to {prefix}{ORDERS}" in produced.output

    commands = str(EVENTS / f"{ERP_COMMANDS}.jsonl")
    _refused(
        producer,
        ["produce", ERP_COMMANDS, commands],
        f"Kafka user {PRODUCER} may not Write to topic {prefix}{ERP_COMMANDS}",
    )
    _refused(
        producer,
        ["tail", ORDERS],
        f"Kafka user {PRODUCER} may not Read topic {prefix}{ORDERS}",
    )


def test_the_analyst_reads_outputs_and_may_write_nothing(acl_kafka: AclKafka) -> None:
    analyst = acl_kafka.as_user(ANALYST)
    prefix = analyst.topic_prefix
    # An output the analyst may read (none the worker writes here), written by the owner.
    alerts = EVENTS / f"{ALERTS}.jsonl"
    written = run(["produce", ALERTS, str(alerts)], _env(acl_kafka.admin))
    assert written.exit_code == 0, written.output
    assert len(_tail(analyst, ALERTS)) == len(alerts.read_text().splitlines())
    listed = run(["dlq", "list", ORDERS], _env(analyst))
    assert listed.exit_code == 0, listed.output
    assert not _denied(acl_kafka, ANALYST)

    for topic in (ALERTS, ORDERS):
        _refused(
            analyst,
            ["produce", topic, str(EVENTS / f"{topic}.jsonl")],
            f"Kafka user {ANALYST} may not Write to topic {prefix}{topic}",
        )
    _refused(analyst, ["tail", ORDERS], f"Kafka user {ANALYST} may not Read topic {prefix}{ORDERS}")


def test_the_worker_runs_its_topology_as_its_principal(acl_kafka: AclKafka, tmp_path: Path) -> None:
    """Its Faust group and changelogs, its dispatcher's group, its outputs; and KEDA reads
    its lag as the same user. The broker refuses it nothing."""
    worker = acl_kafka.as_user(WORKER, data_dir=tmp_path / "data")
    orders = EVENTS / f"{ORDERS}.jsonl"
    produced = run(["produce", ORDERS, str(orders)], _env(acl_kafka.as_user(PRODUCER)))
    assert produced.exit_code == 0, produced.output
    analyst = acl_kafka.as_user(ANALYST)
    log = tmp_path / "worker.log"
    process = spawn_worker(worker, log)
    try:
        statuses = wait_for(
            lambda: _tail(analyst, ORDER_STATUS),
            timeout=90,
            what="order statuses from the worker's agents",
        )
        commands = wait_for(
            lambda: _tail(analyst, ERP_COMMANDS),
            timeout=60,
            what="an ERP command from the worker's dispatcher",
        )
        catalog = TopicCatalog.from_settings(worker)
        lag = wait_for(
            lambda: _committed(worker, catalog),
            timeout=30,
            what="the worker's group to commit its inputs",
        )
    finally:
        assert process.stop() == 0, log.read_text()
    order_ids = {json.loads(line)["order_id"] for line in orders.read_text().splitlines()}
    assert {r["value"]["order_id"] for r in statuses} <= order_ids
    assert commands[0]["value"]["command"]["order_id"] in order_ids
    assert lag
    assert "authorization" not in log.read_text().lower()
    assert not _denied(acl_kafka, WORKER)


def _committed(settings: Settings, catalog: TopicCatalog) -> dict[tuple[str, int], int] | None:
    """The Faust group's lag on its sources, as KEDA reads it, once it is all consumed."""
    lag = consumer_lag(
        settings.confluent_config(),
        worker_group(settings.app_id),
        [catalog.physical(name) for name in AGENT_SOURCES],
    )
    return lag if not any(lag.values()) else None


def _denied(acl_kafka: AclKafka, user: str) -> list[str]:
    """What the broker's authorizer refused `user`: nothing, for a principal doing its job
    (a client may retry a refusal silently)."""
    assert acl_kafka.broker.log_path is not None
    return [
        line
        for line in acl_kafka.broker.log_path.read_text().splitlines()
        if f"User:{user} is Denied" in line
    ]


class _Accepting:
    """An ERP that executes every command at once: the connector's Kafka side is tested here."""

    name = "tryton"

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def execute(self, command: Command) -> Document:
        await asyncio.sleep(0)
        return Document("sale.sale", command.command_id)


def test_the_connector_executes_commands_and_may_not_read_the_inputs(
    acl_kafka: AclKafka,
) -> None:
    connector = acl_kafka.as_user(CONNECTOR, connector_commit_interval_seconds=0.2)
    prefix = connector.topic_prefix
    commands = EVENTS / f"{ERP_COMMANDS}.jsonl"
    written = run(["produce", ERP_COMMANDS, str(commands)], _env(acl_kafka.admin))
    assert written.exit_code == 0, written.output
    ids = {json.loads(line)["command_id"] for line in commands.read_text().splitlines()}
    catalog = TopicCatalog.from_settings(connector)
    sink = RunningService(lambda: ErpSink(connector, catalog, Codec(STORE), _Accepting()))
    try:
        answered = wait_for(
            lambda: (
                ids <= {r["key"] for r in _tail(acl_kafka.as_user(ANALYST), ERP_RESULTS)}
                and _tail(acl_kafka.as_user(ANALYST), ERP_RESULTS)
            ),
            timeout=60,
            what="a result for every command from the connector",
        )
    finally:
        sink.stop()
    assert {r["value"]["status"] for r in answered} == {"SUCCEEDED"}
    assert not _denied(acl_kafka, CONNECTOR)
    _refused(
        connector, ["tail", ORDERS], f"Kafka user {CONNECTOR} may not Read topic {prefix}{ORDERS}"
    )


def test_the_webhooks_connector_and_the_payouts_job_each_do_only_theirs(
    acl_kafka: AclKafka,
) -> None:
    webhooks = acl_kafka.as_user(WEBHOOKS)
    catalog = TopicCatalog.from_settings(webhooks)
    pushes = PushReader(webhooks.confluent_config(), catalog.physical(STOCK_PUSHES), Echoes(1000))
    pushes.start(30.0)
    try:
        assert pushes.caught_up.wait(30)
    finally:
        pushes.stop()
    publisher = Publisher(webhooks.producer_config(), 10.0)
    publisher.start()
    try:
        # Bytes no event decodes from: the worker, if it ran, would dead-letter them.
        webhook = Outgoing(catalog.physical(PAYMENTS), None, b"order-1", b"-", (), "a webhook")
        asyncio.run(publisher.publish([webhook]))
    finally:
        publisher.stop()

    payouts = acl_kafka.as_user(PAYOUTS)
    watermarks = catalog.physical(PAYOUT_WATERMARKS)
    with PartitionReader(payouts.confluent_config()) as reader:
        assert read_watermarks(reader, watermarks) == {}
    sender = Sender(payouts.producer_config())
    sender.require_topic(watermarks)
    mark = Watermark("2026-12-01T00:00:00Z", ("payout-1",))
    sender.send(Outgoing(watermarks, None, b"main", mark.to_json(), (), "a watermark"))
    assert sender.finish() == []
    with PartitionReader(payouts.confluent_config()) as reader:
        assert read_watermarks(reader, watermarks) == {"main": mark}
    assert not _denied(acl_kafka, WEBHOOKS)
    assert not _denied(acl_kafka, PAYOUTS)

    prefix = webhooks.topic_prefix
    _refused(
        payouts,
        ["produce", ORDERS, str(EVENTS / f"{ORDERS}.jsonl")],
        f"Kafka user {PAYOUTS} may not Write to topic {prefix}{ORDERS}",
    )
    _refused(
        webhooks,
        ["tail", ERP_COMMANDS],
        f"Kafka user {WEBHOOKS} may not Read topic {prefix}{ERP_COMMANDS}",
    )


class _Catalogue:
    """An ERP with one product and one customer: the source's Kafka side is tested here."""

    source = "erp:tryton"
    _at = datetime(2026, 12, 1, tzinfo=UTC)

    async def products(self, since: datetime | None) -> list[CatalogItem]:
        price = ListPrice("USD", Decimal("9.5"))
        return [CatalogItem("SKU-1", "Beanie", None, "u", True, (price,), "1", self._at)]

    async def customers(self, since: datetime | None) -> list[ErpCustomer]:
        return [ErpCustomer("CUS-1", "Ava", None, None, True, (), "2", self._at)]


def test_the_erp_source_publishes_master_data_and_may_not_write_the_inputs(
    acl_kafka: AclKafka,
) -> None:
    settings = acl_kafka.as_user(ERP_SOURCE)
    catalog = TopicCatalog.from_settings(settings)

    def source() -> MasterDataSource:
        made = MasterDataSource(
            _Catalogue(),
            Codec(STORE),
            Sender(settings.producer_config()),
            catalog_topic=catalog.physical(ERP_CATALOG),
            customers_topic=catalog.physical(ERP_CUSTOMERS),
            overlap=timedelta(minutes=5),
        )
        with PartitionReader(settings.confluent_config()) as reader:
            made.load(reader)
        return made

    polled = asyncio.run(source().poll())
    assert [(p.kind, p.published) for p in polled] == [("products", 1), ("customers", 1)]
    # Restarted, it reads its topics back and has nothing new to say.
    again = asyncio.run(source().poll())
    assert [p.published for p in again] == [0, 0]
    assert [r["key"] for r in _tail(acl_kafka.as_user(ANALYST), ERP_CATALOG)] == ["SKU-1"]
    assert not _denied(acl_kafka, ERP_SOURCE)
    _refused(
        settings,
        ["produce", ORDERS, str(EVENTS / f"{ORDERS}.jsonl")],
        f"Kafka user {ERP_SOURCE} may not Write to topic {settings.topic_prefix}{ORDERS}",
    )


def test_the_storefront_sink_sets_stock_and_may_not_read_the_inputs(
    acl_kafka: AclKafka,
) -> None:
    with woocommerce_admin() as shop:
        shop.products[11] = {"id": 11, "sku": "SKU-A", "manage_stock": False}
        route = WebhookRoute(
            provider="woocommerce",
            warehouses={"default": "WH-1"},
            admin_url=shop.url,
            push_stock=True,
        )
        settings = acl_kafka.as_user(
            STOREFRONT,
            webhook_routes={"shop": route},
            webhook_admin_tokens=SecretStr(json.dumps({"shop": f"{WOO_KEY}:{WOO_SECRET}"})),
        )
        catalog = TopicCatalog.from_settings(settings)
        level = {"warehouse_id": "WH-1", "on_hand": 4, "reserved": 0, "available": 4}
        datum = {
            "event_id": "avail:SKU-A:1", "occurred_at": 1_780_000_000_000, "source": "erpbridge",
            "sku": "SKU-A", "on_hand": 4, "reserved": 0, "available": 4, "warehouses": [level],
        }  # fmt: skip
        availability = catalog.physical(AVAILABILITY)
        worker = Sender(acl_kafka.as_user(WORKER).producer_config())
        value = Codec(STORE).encode("erpbridge.StockAvailability", datum, topic=availability)
        worker.send(Outgoing(availability, None, b"SKU-A", value, (), "availability"))
        assert worker.finish() == []
        routes = {"shop": route}
        with httpx.Client() as client:
            sink = StorefrontSink(
                settings,
                catalog,
                Codec(STORE),
                routes,
                storefront_adapters(settings, routes, client),
            )
            sink.start()
            try:
                wait_for(
                    lambda: sink.poll() and shop.products[11].get("stock_quantity") == 4,
                    timeout=60,
                    what="SKU-A's level set",
                )
            finally:
                sink.close()
        assert shop.products[11]["stock_quantity"] == 4
    # The module's worker test left other SKUs' availability there: the shop sells none.
    results = _tail(acl_kafka.as_user(ANALYST), STOREFRONT_RESULTS)
    assert [r["value"]["status"] for r in results if r["value"]["sku"] == "SKU-A"] == ["SET"]
    assert not _denied(acl_kafka, STOREFRONT)
    _refused(
        settings,
        ["tail", ORDERS],
        f"Kafka user {STOREFRONT} may not Read topic {settings.topic_prefix}{ORDERS}",
    )


def test_the_medusa_source_publishes_store_orders_and_may_not_read_them_back(
    acl_kafka: AclKafka, medusa: Medusa
) -> None:
    key = medusa.secret_key("acl-test")
    route = WebhookRoute(
        provider="medusa", warehouses={medusa.stock_location_id: "WH-1"}, admin_url=medusa.url
    )
    settings = acl_kafka.as_user(
        MEDUSA_SOURCE,
        webhook_routes={"medusa": route},
        webhook_admin_tokens=SecretStr(json.dumps({"medusa": key})),
    )
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    catalogue = Catalogue.default()
    customer = next(c for c in catalogue.customers if c.address.country == "US")
    sku = catalogue.skus[-5].code  # tests/connectors/webhooks/medusa/test_poll.py's
    order = medusa.checkout({medusa.variants[sku].variant_id: 1}, customer.email, address(customer))

    polled = run(["connector", "medusa-source", "--once", "--since", since], _env(settings))
    assert polled.exit_code == 0, polled.output
    assert "medusa: 1 order read, 2 events published" in polled.output
    admin_settings = acl_kafka.admin
    assert {
        m.key().decode() for m in read_all(admin_settings, admin_settings.topic_prefix + ORDERS)
    } >= {order["id"]}
    assert not _denied(acl_kafka, MEDUSA_SOURCE)
    _refused(
        settings,
        ["tail", ORDERS],
        f"Kafka user {MEDUSA_SOURCE} may not Read topic {settings.topic_prefix}{ORDERS}",
    )
