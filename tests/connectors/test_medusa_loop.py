"""The loop with the live Medusa and the live Tryton: an order checked out in the store
and paid comes in through `connector medusa-source` with its customer's account, the
worker reserves its stock and the ERP connector makes its sales order in Tryton, sold to the
ERP's customer of the account's e-mail; the storefront sink sets Medusa's level so that
Medusa sells what erpbridge says is available; the warehouse's shipment goes back to
Medusa's order with its tracking number, and Medusa's record of it does not come back in as
a second shipment. A shopper's new account becomes one ERP customer, which the storefront
sink then marks the account with, and the mark's echo makes no second one."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from connectors.erp.adapters import adapter_for
from connectors.erp.master import CatalogItem, catalog_datum, customer_datum
from connectors.erp.sink import ErpSink
from connectors.erp.tryton import TrytonAdapter
from connectors.erp.tryton.master import SOURCE as TRYTON_SOURCE
from connectors.erp.tryton.master import TrytonMasterData
from connectors.storefront.customers import MARK
from streams.contracts.changelogs import changelog_sources
from streams.contracts.topics import (
    AVAILABILITY,
    ERP_CATALOG,
    ERP_COMMANDS,
    ERP_CUSTOMERS,
    ERP_RESULTS,
    INVENTORY,
    ORDERS,
    PAYMENTS,
    STOREFRONT_CATALOG_RESULTS,
    STOREFRONT_CUSTOMER_RESULTS,
    STOREFRONT_FULFILMENT_RESULTS,
    TopicCatalog,
)
from streams.local.medusa import Medusa
from streams.local.tryton import Tryton
from streams.ops.settings import RateLimit, Settings, WebhookRoute
from streams.ops.topic_admin import ensure_topics
from streams.sample.generator import Catalogue, SampleEvent
from tests.connectors.storefront.flow import CODEC, drain, new_sink
from tests.connectors.storefront.flow import produce as produce_records
from tests.connectors.webhooks.medusa.steps import payment_id, receive_return
from tests.streams.local.test_medusa import address, money
from tests.streams.topology.agents.pipeline import produce, read_all
from tests.support import (
    RunningService,
    on_tryton,
    run,
    settings_env,
    spawn_worker,
    wait_for,
    worker_settings,
)

CATALOGUE = Catalogue.default()
# tests/connectors/webhooks/medusa/test_poll.py's SKU; its orders there are shipped or
# cancelled before this runs, and Medusa's level here is compared with its reservations.
ITEM = CATALOGUE.skus[-6]
SKU = ITEM.code
WAREHOUSE = "WH-EAST"  # the seeded stock location's warehouse: it serves the whole US
CUSTOMER = next(c for c in CATALOGUE.customers if c.address.region == "NY")
ON_HAND = 50


def _settings(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa, tryton: Tryton
) -> Settings:
    key = medusa.secret_key(topic_prefix)
    route = WebhookRoute(
        provider="medusa",
        warehouses={medusa.stock_location_id: WAREHOUSE},
        admin_url=medusa.url,
        push_stock=True,
        push_tracking=True,
        push_customers=True,
    )
    settings = worker_settings(
        kafka_broker.bootstrap_servers,
        topic_prefix,
        tmp_path / "data",
        webhook_routes={"medusa": route},
        webhook_admin_tokens=SecretStr(json.dumps({"medusa": key})),
        erp_url=tryton.url,
        erp_login=tryton.login,
        erp_password=tryton.password,
        erp_rate_limits={"tryton": RateLimit(rate=100, burst=20)},
    )
    ensure_topics(
        settings.confluent_config(),
        TopicCatalog.from_settings(settings),
        changelogs=changelog_sources(settings.app_id),
    )
    return settings


def _poll(settings: Settings, *options: str) -> str:
    result = run(["connector", "medusa-source", "--once", *options], settings_env(settings))
    assert result.exit_code == 0, result.output + result.stderr
    return str(result.output)


def _event_ids(settings: Settings, order_id: str) -> list[str]:
    topics = TopicCatalog.from_settings(settings)
    return [
        CODEC.decode(m.value()).datum["event_id"]
        for name in (ORDERS, PAYMENTS)
        for m in read_all(settings, topics.physical(name))
        if m.key() == order_id.encode()
    ]


def _available_here(settings: Settings) -> int | None:
    """erpbridge's latest available of the SKU at the warehouse."""
    topics = TopicCatalog.from_settings(settings)
    latest = None
    for m in read_all(settings, topics.physical(AVAILABILITY)):
        if m.key() == SKU.encode():
            latest = CODEC.decode(m.value()).datum
    if latest is None:
        return None
    (level,) = [w for w in latest["warehouses"] if w["warehouse_id"] == WAREHOUSE]
    return int(level["available"])


def _medusa_level(medusa: Medusa) -> dict[str, Any]:
    item = medusa.variants[SKU].inventory_item_id
    with medusa.admin() as admin:
        levels = admin.get(f"/admin/inventory-items/{item}/location-levels")["inventory_levels"]
    (level,) = [lv for lv in levels if lv["location_id"] == medusa.stock_location_id]
    return dict(level)


def _erp(settings: Settings) -> RunningService[ErpSink]:
    """The ERP connector, executing erp.commands in the session's Tryton."""
    topics = TopicCatalog.from_settings(settings)
    return RunningService(lambda: ErpSink(settings, topics, CODEC, adapter_for(settings)))


def _documents(settings: Settings, kind: str) -> dict[str, str]:
    """Command id -> the ERP's document id, of every command of `kind` the ERP executed."""
    topics = TopicCatalog.from_settings(settings)
    return {
        datum["command_id"]: datum["document_id"]
        for datum in (
            CODEC.decode(m.value()).datum for m in read_all(settings, topics.physical(ERP_RESULTS))
        )
        if datum["kind"] == kind and datum["status"] == "SUCCEEDED"
    }


def _sales_orders(settings: Settings, order_id: str) -> list[str]:
    topics = TopicCatalog.from_settings(settings)
    found = []
    for m in read_all(settings, topics.physical(ERP_COMMANDS)):
        datum = CODEC.decode(m.value()).datum
        name, command = datum["command"]
        if name == "erpbridge.CreateSalesOrder" and command["order_id"] == order_id:
            found.append(datum["command_id"])
    return found


def test_a_store_order_reaches_the_erp_and_its_shipment_and_stock_reach_the_store(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa, tryton: Tryton
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, medusa, tryton)
    topics = TopicCatalog.from_settings(settings)
    now = datetime.now(UTC)
    snapshot = {
        "event_id": f"erp:snapshot:{SKU}", "occurred_at": now - timedelta(minutes=1),
        "source": "erp:tryton", "sku": SKU,
        "event": ("erpbridge.StockSnapshot", {"warehouse_id": WAREHOUSE, "on_hand": ON_HAND,
                                              "as_of": now - timedelta(minutes=1)}),
    }  # fmt: skip
    produce(
        settings, topics, CODEC, [SampleEvent(INVENTORY, SKU, "erpbridge.InventoryEvent", snapshot)]
    )
    since = (now - timedelta(seconds=1)).isoformat()
    order = medusa.checkout({medusa.variants[SKU].variant_id: 2}, CUSTOMER.email, address(CUSTOMER))
    order_id = order["id"]
    # The merchant captures the payment: a prepaid order goes to the ERP once paid.
    payment = payment_id(medusa, order_id)
    with medusa.admin() as admin:
        capture = admin.post(f"/admin/payments/{payment}/capture", {}, {"fields": "id,*captures"})
    (captured,) = capture["payment"]["captures"]
    polled = _poll(settings, "--since", since)
    # The order's events, and its customer's account (a guest's: its orders name it too).
    assert "1 order read, 3 events published; 1 customer account published" in polled, polled

    worker = spawn_worker(settings, tmp_path / "worker.log")
    erp = _erp(settings)
    sink = new_sink(settings)
    sink.start()
    try:
        # The ERP is sent one sales order, and the two units are reserved at the warehouse.
        wait_for(lambda: _sales_orders(settings, order_id), timeout=180, what="the sales order")
        # Tryton sells it to its customer of the account's e-mail, which the account's
        # UpsertCustomer recorded the account on.
        (sale,) = wait_for(
            lambda: list(_documents(settings, "CreateSalesOrder").values()) or None,
            timeout=60,
            what="the sales order in Tryton",
        )
        (customer,) = on_tryton(tryton, lambda t: t.rpc.model(
            "sale.sale", "read", [int(sale)], ["party.code", "party.email"]))  # fmt: skip
        assert customer["party."]["email"] == CUSTOMER.email
        assert customer["party."]["code"] == CUSTOMER.customer_id
        wait_for(
            lambda: _available_here(settings) == ON_HAND - 2,
            timeout=60,
            what=f"{ON_HAND - 2} of {SKU} available in erpbridge",
        )

        # Medusa sells what erpbridge says is available, its own reservation added back.
        def medusa_sells(quantity: int) -> dict[str, Any] | None:
            sink.poll(timeout=0.5)
            level = _medusa_level(medusa)
            return level if level["available_quantity"] == quantity else None

        level = wait_for(lambda: medusa_sells(ON_HAND - 2), timeout=60, what="Medusa's level")
        assert level["stocked_quantity"] == ON_HAND - 2 + level["reserved_quantity"]

        # The warehouse ships both units with a tracking number.
        shipped = {
            "event_id": "wms:shipment:MED-1", "occurred_at": datetime.now(UTC),
            "source": "wms", "order_id": order_id,
            "event": ("erpbridge.OrderFulfilled", {
                "fulfillment_id": "MED-1", "warehouse_id": WAREHOUSE,
                "lines": [{"sku": SKU, "quantity": 2}], "carrier": "UPS",
                "tracking_number": "1ZLOOP0001"}),
        }  # fmt: skip
        produce(
            settings,
            topics,
            CODEC,
            [SampleEvent(ORDERS, order_id, "erpbridge.OrderEvent", shipped)],
        )
        (made,) = drain(sink, settings, 1, STOREFRONT_FULFILMENT_RESULTS)
        assert made["status"] == "CREATED"
        # Stock left the warehouse in both: Medusa still sells what erpbridge has.
        wait_for(lambda: medusa_sells(ON_HAND - 2), timeout=60, what="Medusa's level after")
        assert _available_here(settings) == ON_HAND - 2

        # The shopper sends one unit back; the merchant receives it and refunds its price.
        receive_return(medusa, order_id, SKU, 1, 0)
        price = ITEM.price("USD")
        with medusa.admin() as admin:
            # Medusa's API takes the amount as a JSON number.
            refunded = admin.post(
                f"/admin/payments/{payment}/refund", {"amount": float(price)},
                {"fields": "id,*refunds"},
            )["payment"]["refunds"]  # fmt: skip
        (refund,) = refunded
        # The order read whole again: its placement, authorisation and capture (duplicates
        # the topology drops), the payment refund and the order's refund.
        assert "1 order read, 5 events published" in _poll(settings)
        # The ERP makes its credit note, with the unit back in the warehouse; erpbridge has
        # it available again, and so does Medusa.
        credit_note = f"{order_id}/credit-note/{refund['id']}"
        invoice = wait_for(
            lambda: _documents(settings, "CreateCreditNote").get(credit_note),
            timeout=120,
            what="the credit note in Tryton",
        )
        (note,) = on_tryton(tryton, lambda t: t.rpc.model(
            "account.invoice", "read", [int(invoice)], ["total_amount", "state"]))  # fmt: skip
        assert note["total_amount"] == -price
        wait_for(
            lambda: _available_here(settings) == ON_HAND - 1,
            timeout=60,
            what=f"{ON_HAND - 1} of {SKU} available in erpbridge after the return",
        )
        wait_for(lambda: medusa_sells(ON_HAND - 1), timeout=60, what="Medusa's level after return")
    finally:
        sink.close()
        erp.stop()
        worker.stop()

    with medusa.admin() as admin:
        read = admin.get(
            f"/admin/orders/{order_id}",
            {"fields": "id,fulfillment_status,*fulfillments,*fulfillments.labels"},
        )["order"]
    assert read["fulfillment_status"] == "shipped"
    assert [label["tracking_number"] for f in read["fulfillments"] for label in f["labels"]] == [
        "1ZLOOP0001"
    ]
    # Medusa's record of erpbridge's shipment is no news: the order, read after it (for its
    # refund), brought in no shipment of its own.
    assert set(_event_ids(settings, order_id)) == {
        f"medusa:order:{order_id}",
        f"medusa:payment:{payment}",
        f"medusa:capture:{captured['id']}",
        "wms:shipment:MED-1",
        f"medusa:refund:{refund['id']}",
        f"medusa:order-refund:{refund['id']}",
    }


def test_a_new_account_becomes_one_erp_customer_whose_id_the_account_then_keeps(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa, tryton: Tryton
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, medusa, tryton)
    tag = uuid.uuid4().hex[:10]
    email = f"new-{tag}@example.com"
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    with medusa.admin() as admin:
        account = admin.post(
            "/admin/customers",
            {"email": email, "first_name": "Nova", "last_name": f"Shopper {tag}"},
            {"fields": "id"},
        )["customer"]
    external = f"medusa:{account['id']}"
    assert "1 customer account published" in _poll(settings, "--since", since)

    worker = spawn_worker(settings, tmp_path / "worker.log")
    erp = _erp(settings)
    sink = new_sink(settings)
    sink.start()
    try:
        (party,) = wait_for(
            lambda: list(_documents(settings, "UpsertCustomer").values()) or None,
            timeout=120,
            what="the account's customer in Tryton",
        )

        async def published(t: Any) -> list[Any]:
            # What `connector erp-source` publishes of it (all of Tryton's would reach Medusa).
            return [c for c in await TrytonMasterData(t.rpc).customers(None) if c.erp_id == party]

        (customer,) = on_tryton(tryton, published)
        assert (customer.name, customer.email) == (f"Nova Shopper {tag}", email)
        topics = TopicCatalog.from_settings(settings)
        produce(settings, topics, CODEC, [SampleEvent(
            ERP_CUSTOMERS, customer.customer_id, "erpbridge.ErpCustomer",
            customer_datum(customer, TRYTON_SOURCE))])  # fmt: skip
        # The sink adopts the shopper's account by its e-mail and marks it.
        (result,) = drain(sink, settings, 1, STOREFRONT_CUSTOMER_RESULTS)
        assert (result["status"], result["storefront_id"]) == ("UPDATED", account["id"])
        with medusa.admin() as admin:
            marked = admin.get(f"/admin/customers/{account['id']}", {"fields": "id,metadata"})
        assert marked["customer"]["metadata"][MARK] == customer.customer_id

        # The mark comes back in as the account's change: a link to the same customer.
        assert "1 customer account published" in _poll(settings)

        def links() -> dict[str, str] | None:
            made = _documents(settings, "UpsertCustomer")
            return {k: v for k, v in made.items() if "/link/" in k} or None

        linked = wait_for(links, timeout=60, what="the link in Tryton")
        assert list(linked.values()) == [party]
    finally:
        sink.close()
        erp.stop()
        worker.stop()

    async def with_email(t: Any) -> Any:
        return await t.rpc.search_read(
            "party.contact_mechanism", [["type", "=", "email"], ["value", "=", email]], ["party"]
        )

    assert [row["party"] for row in on_tryton(tryton, with_email)] == [int(party)]
    identified = on_tryton(tryton, lambda t: t.rpc.search_read(
        "party.identifier", [["code", "=", external]], ["party"]))  # fmt: skip
    assert [row["party"] for row in identified] == [int(party)]


def test_a_tryton_products_variants_are_one_medusa_product(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa, tryton: Tryton
) -> None:
    tag = uuid.uuid4().hex[:8]

    async def tee(erp: TrytonAdapter) -> tuple[int, list[CatalogItem]]:
        """A template with a small and a large variant told apart by their size; what the
        ERP source reads of them."""
        since = datetime.now(UTC) - timedelta(seconds=1)
        (unit,) = await erp.rpc.search_read("product.uom", [["symbol", "=", "u"]], ["id"])
        (size,) = await erp.rpc.create("product.attribute", [{
            "name": f"size_{tag}", "string": "Size", "type_": "selection",
            "selection": "s:Small\nl:Large"}])  # fmt: skip
        (sizes,) = await erp.rpc.create("product.attribute.set", [
            {"name": f"Sizes {tag}", "attributes": [["add", [size]]]}])  # fmt: skip
        (template,) = await erp.rpc.create("product.template", [{
            "name": f"Tee {tag}", "code": f"TEE-{tag}", "type": "goods",
            "default_uom": unit["id"], "sale_uom": unit["id"], "salable": True,
            "list_price": Decimal("20.00"), "attribute_set": sizes,
            "products": [["create", [
                {"suffix_code": "-S", "attributes": {f"size_{tag}": "s"}},
                {"suffix_code": "-L", "attributes": {f"size_{tag}": "l"}}]]]}])  # fmt: skip
        read = await TrytonMasterData(erp.rpc).products(since)
        return template, [item for item in read if item.sku.startswith(f"TEE-{tag}")]

    template, items = on_tryton(tryton, tee)
    assert sorted(i.sku for i in items) == [f"TEE-{tag}-L", f"TEE-{tag}-S"]
    settings = _settings(kafka_broker, topic_prefix, tmp_path, medusa, tryton)
    route = settings.webhook_routes["medusa"].model_copy(update={"push_catalog": True})
    settings = settings.model_copy(update={"webhook_routes": {"medusa": route}})
    records = [
        (item.sku, CODEC.encode("erpbridge.CatalogItem", catalog_datum(item, TRYTON_SOURCE),
                                topic="erp.catalog"))
        for item in items
    ]  # fmt: skip
    produce_records(settings, records, ERP_CATALOG)
    sink = new_sink(settings)
    sink.start()
    try:
        results = drain(sink, settings, 2, STOREFRONT_CATALOG_RESULTS)
    finally:
        sink.close()
    assert sorted(r["status"] for r in results) == ["CREATED", "CREATED"]
    with medusa.admin() as admin:
        (product,) = admin.get("/admin/products", {
            "handle": f"erpbridge-group-{template}",
            "fields": "id,title,*variants,variants.options.value,*variants.prices"})["products"]  # fmt: skip
    assert product["title"] == f"Tee {tag}"
    assert sorted(
        (v["sku"], [o["value"] for o in v["options"]], [money(p["amount"]) for p in v["prices"]])
        for v in product["variants"]
    ) == [
        (f"TEE-{tag}-L", ["Large"], [Decimal("20.00")]),
        (f"TEE-{tag}-S", ["Small"], [Decimal("20.00")]),
    ]
