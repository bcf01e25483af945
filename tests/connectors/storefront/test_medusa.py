"""The storefront sink against the session's live Medusa (streams.local.medusa), as a secret
API key: levels set as Medusa's stocked quantity, an order placed in the store shown
fulfilled and shipped with its tracking number, once, the ERP's products created, renamed,
repriced and archived, and its customers kept as one account each."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.storefront.adapter import StorefrontUnavailable, SyncStatus
from connectors.storefront.customers import MARK, Customer
from connectors.storefront.medusa import MedusaStorefront
from connectors.storefront.products import Contract, Product
from streams.contracts.topics import (
    ERP_CATALOG,
    ERP_CUSTOMERS,
    STOREFRONT_CATALOG_RESULTS,
    STOREFRONT_CUSTOMER_RESULTS,
    STOREFRONT_FULFILMENT_RESULTS,
    STOREFRONT_FULFILMENTS,
)
from streams.local.medusa import Medusa
from streams.ops.settings import Settings, WebhookRoute
from streams.sample.generator import Catalogue
from tests.connectors.storefront.flow import (
    ATTRIBUTES_NOW,
    GROUP_STEPS,
    LAST_VARIANT_STEPS,
    availability,
    catalog_item,
    drain,
    erp_customer,
    fulfilment,
    new_sink,
    produce,
    push_attributes,
    push_group,
    sink_settings,
    statuses,
)
from tests.streams.local.test_medusa import money
from tests.support import wait_for

CATALOGUE = Catalogue.default()
# The storefront lives for the session; tests/streams/local/test_medusa.py takes the last two.
STOCKED, SHIPPED = CATALOGUE.skus[-3].code, CATALOGUE.skus[-4].code
WAREHOUSE = "WH-EAST"


def _settings(
    kafka_broker: Any,
    topic_prefix: str,
    tmp_path: Path,
    medusa: Medusa,
    catalog: bool = False,
    customers: bool = False,
) -> Settings:
    token = medusa.secret_key(topic_prefix)
    route = WebhookRoute(
        provider="medusa",
        warehouses={medusa.stock_location_id: WAREHOUSE},
        admin_url=medusa.url,
        push_stock=not (catalog or customers),
        push_tracking=not (catalog or customers),
        push_catalog=catalog,
        push_customers=customers,
    )
    return sink_settings(kafka_broker, topic_prefix, tmp_path, {"medusa": route}, {"medusa": token})


def _level(medusa: Medusa, sku: str) -> dict[str, Any]:
    item = medusa.variants[sku].inventory_item_id
    with medusa.admin() as admin:
        levels = admin.get(f"/admin/inventory-items/{item}/location-levels")["inventory_levels"]
    (level,) = [lv for lv in levels if lv["location_id"] == medusa.stock_location_id]
    return dict(level)


def test_medusa_sells_what_erpbridge_says_is_available_and_shows_its_shipments(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, medusa)
    customer = next(c for c in CATALOGUE.customers if c.address.country == "US")
    place = customer.address
    first, last = customer.name.split(" ", 1)
    ship_to = {"first_name": first, "last_name": last, "address_1": place.line1,
               "city": place.city, "postal_code": place.postal_code or "",
               "country_code": place.country.lower()}  # fmt: skip
    order = medusa.checkout({medusa.variants[SHIPPED].variant_id: 2}, customer.email, ship_to)
    assert _level(medusa, SHIPPED)["reserved_quantity"] == 2

    sink = new_sink(settings)
    produce(
        settings,
        [
            (STOCKED, availability(STOCKED, 37, WAREHOUSE)),
            (SHIPPED, availability(SHIPPED, 5, WAREHOUSE)),
        ],
    )
    shipped = fulfilment(
        "medusa", order["id"], "FUL-M1", {SHIPPED: 2}, warehouse=WAREHOUSE, tracking="1ZMEDUSA1"
    )
    sink.start()
    try:
        levels = drain(sink, settings, 2)
        assert {r["sku"]: r["status"] for r in levels} == {STOCKED: "SET", SHIPPED: "SET"}
        stocked = _level(medusa, STOCKED)
        assert (stocked["stocked_quantity"], stocked["available_quantity"]) == (37, 37)
        # Medusa's own open order is already out of erpbridge's available (connector
        # medusa-source brings it in): the level adds its reservation back, and Medusa
        # sells what erpbridge says is available.
        before = _level(medusa, SHIPPED)
        assert (before["stocked_quantity"], before["reserved_quantity"]) == (7, 2)
        assert before["available_quantity"] == 5
        produce(settings, [shipped], STOREFRONT_FULFILMENTS)
        [made] = drain(sink, settings, 1, STOREFRONT_FULFILMENT_RESULTS)
        produce(settings, [shipped], STOREFRONT_FULFILMENTS)  # asked again
        [again] = [r for r in drain(sink, settings, 2, STOREFRONT_FULFILMENT_RESULTS) if r != made]
    finally:
        sink.close()

    assert (made["status"], again["status"]) == ("CREATED", "ALREADY_THERE")
    assert again["storefront_id"] == made["storefront_id"]
    with medusa.admin() as admin:
        read = admin.get(
            f"/admin/orders/{order['id']}",
            {"fields": "id,fulfillment_status,*fulfillments,*fulfillments.labels"},
        )["order"]
    (fulfillment,) = read["fulfillments"]
    assert fulfillment["id"] == made["storefront_id"]
    assert fulfillment["shipped_at"] is not None
    assert fulfillment["location_id"] == medusa.stock_location_id
    assert fulfillment["metadata"] == {"erpbridge_fulfillment_id": "FUL-M1"}
    assert [label["tracking_number"] for label in fulfillment["labels"]] == ["1ZMEDUSA1"]
    assert read["fulfillment_status"] == "shipped"
    shipped_level = wait_for(
        lambda: (lv := _level(medusa, SHIPPED))["reserved_quantity"] == 0 and lv,
        timeout=30,
        what="Medusa to release the shipped order's reservation",
    )
    assert shipped_level["stocked_quantity"] == 5  # the shipment took the order's 2 out


def _shown(medusa: Medusa, sku: str) -> dict[str, Any] | None:
    """The product of `sku` as the admin sees it: title, status, prices by currency."""
    with medusa.admin() as admin:
        found = admin.get(
            "/admin/product-variants",
            {
                "q": sku,
                "fields": "id,sku,*prices,product.title,product.status,*product.sales_channels",
            },
        )["variants"]
    exact = [v for v in found if v["sku"] == sku]
    if not exact:
        return None
    (variant,) = exact
    return {
        "title": variant["product"]["title"],
        "status": variant["product"]["status"],
        "prices": {p["currency_code"]: money(p["amount"]) for p in variant["prices"]},
    }


def test_medusa_shows_the_erps_products_created_repriced_and_archived(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, medusa, catalog=True)
    new, gone = f"NEW-{topic_prefix[-9:-1]}", f"GONE-{topic_prefix[-9:-1]}"
    records = [
        catalog_item(STOCKED, "Renamed in the ERP", {"USD": "99.5000", "EUR": "89.0000"}),
        catalog_item(new, "A new product", {"USD": "12.0000"}),
        catalog_item(gone, "Soon gone", {"USD": "3.0000"}),
    ]
    sink = new_sink(settings)
    produce(settings, records, ERP_CATALOG)
    sink.start()
    try:
        first = drain(sink, settings, 3, STOREFRONT_CATALOG_RESULTS)
        produce(settings, [*records[:2], catalog_item(gone, "Soon gone", {}, active=False)],
                ERP_CATALOG)  # fmt: skip
        results = drain(sink, settings, 6, STOREFRONT_CATALOG_RESULTS)
    finally:
        sink.close()

    assert {r["sku"]: r["status"] for r in first} == {
        STOCKED: "UPDATED", new: "CREATED", gone: "CREATED"
    }  # fmt: skip
    # Per SKU in the order answered (one key, one partition).
    assert statuses(results, "sku") == {
        STOCKED: ["UPDATED", "UNCHANGED"], new: ["CREATED", "UNCHANGED"],
        gone: ["CREATED", "UPDATED"],
    }  # fmt: skip
    assert _shown(medusa, STOCKED) == {
        "title": "Renamed in the ERP", "status": "published",
        "prices": {"usd": Decimal("99.50"), "eur": Decimal("89.00")},
    }  # fmt: skip
    assert _shown(medusa, new) == {
        "title": "A new product", "status": "published", "prices": {"usd": Decimal("12.00")}
    }  # fmt: skip
    archived = _shown(medusa, gone)
    assert archived is not None and archived["status"] == "draft"


def test_medusa_keeps_the_erps_customers_as_one_account_each(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, medusa, customers=True)
    tag = topic_prefix[-9:-1].lower()
    new, ann = f"CUST-NEW-{tag}", f"CUST-ANN-{tag}"
    fields = {"fields": "id,email,first_name,phone,metadata,*addresses"}
    with medusa.admin() as admin:
        # An account the customer made in the shop before erpbridge knew the shop.
        registered = admin.post("/admin/customers", {"email": f"ann-{tag}@example.com",
                                                     "first_name": "Ann"}, fields)["customer"]  # fmt: skip
    records = [
        erp_customer(new, f"Jane Doe {tag}", f"jane-{tag}@example.com"),
        erp_customer(ann, f"Ann Smith {tag}", f"ann-{tag}@example.com"),
    ]
    sink = new_sink(settings)
    produce(settings, records, ERP_CUSTOMERS)
    sink.start()
    try:
        first = drain(sink, settings, 2, STOREFRONT_CUSTOMER_RESULTS)
        moved = erp_customer(
            new, f"Jane Doe {tag}", f"jane.doe-{tag}@example.com", street="2 Elm St"
        )
        produce(settings, [records[1], moved], ERP_CUSTOMERS)
        results = drain(sink, settings, 4, STOREFRONT_CUSTOMER_RESULTS)
    finally:
        sink.close()

    assert {r["customer_id"]: r["status"] for r in first} == {new: "CREATED", ann: "UPDATED"}
    # Per customer in the order answered (one key, one partition).
    assert statuses(results, "customer_id") == {
        new: ["CREATED", "UPDATED"],
        ann: ["UPDATED", "UNCHANGED"],
    }
    with medusa.admin() as admin:
        shown = admin.get("/admin/customers", {**fields, "q": tag, "limit": 100})["customers"]
    marked = {(c.get("metadata") or {}).get(MARK): c for c in shown}
    assert set(marked) == {new, ann}  # one account each, the registered one adopted
    assert marked[ann]["id"] == registered["id"]
    jane = marked[new]
    assert (jane["email"], jane["first_name"], jane["phone"]) == (
        f"jane.doe-{tag}@example.com", f"Jane Doe {tag}", "+1 555 0100"
    )  # fmt: skip
    (address,) = [a for a in jane["addresses"] if a["address_name"] == "erpbridge"]
    assert (address["address_1"], address["city"], address["country_code"]) == (
        "2 Elm St", "Springfield", "us"
    )  # fmt: skip
    assert address["is_default_shipping"] and address["is_default_billing"]


def test_medusa_charges_the_erps_customers_their_price_lists_prices(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa
) -> None:
    """An ERP price list becomes an override price list for a customer group of its own,
    its quantity breaks prices by cart quantity, and its customers that group's members."""
    settings = _settings(kafka_broker, topic_prefix, tmp_path, medusa, catalog=True, customers=True)
    tag = topic_prefix[-9:-1].lower()
    sku, price_list, buyer = f"PL-{tag}", f"PL{tag}", f"CUST-PL-{tag}"
    contract = {price_list: [(0, "10.0000"), (10, "8.0000")]}
    sink = new_sink(settings)
    produce(settings, [catalog_item(sku, "Contract product", {"USD": "12.0000"},
                                    contracts=contract)], ERP_CATALOG)  # fmt: skip
    produce(settings, [erp_customer(buyer, f"Trade Buyer {tag}", f"pl-{tag}@example.com",
                                    price_list=price_list)], ERP_CUSTOMERS)  # fmt: skip
    sink.start()
    try:
        (made,) = drain(sink, settings, 1, STOREFRONT_CATALOG_RESULTS)
        (account,) = drain(sink, settings, 1, STOREFRONT_CUSTOMER_RESULTS)
        # Again unchanged; then the ERP stops pricing the product in that list.
        produce(settings, [catalog_item(sku, "Contract product", {"USD": "12.0000"},
                                        contracts=contract)], ERP_CATALOG)  # fmt: skip
        again = drain(sink, settings, 2, STOREFRONT_CATALOG_RESULTS)
        with medusa.admin() as admin:
            lists = admin.get("/admin/price-lists", {"fields": "id,description,type,status,*price_list_rules",
                                                      "limit": 100})["price_lists"]  # fmt: skip
            (kept,) = [p for p in lists if p["description"] == f"erpbridge price list {price_list}"]
            prices = admin.get(
                f"/admin/price-lists/{kept['id']}",
                {"fields": "id,*prices,prices.price_set.variant.id"},
            )
            customer = admin.get(f"/admin/customers/{account['storefront_id']}",
                                 {"fields": "id,*groups"})["customer"]  # fmt: skip
        produce(settings, [catalog_item(sku, "Contract product", {"USD": "12.0000"})], ERP_CATALOG)
        dropped = drain(sink, settings, 3, STOREFRONT_CATALOG_RESULTS)
        with medusa.admin() as admin:
            after = admin.get(
                f"/admin/price-lists/{kept['id']}",
                {"fields": "id,*prices,prices.price_set.variant.id"},
            )
    finally:
        sink.close()

    assert (made["status"], account["status"]) == ("CREATED", "CREATED")
    assert [r["status"] for r in again][-1] == "UNCHANGED"
    assert (kept["type"], kept["status"]) == ("override", "active")
    (group,) = kept["rules"]["customer.groups.id"]
    assert [g["id"] for g in customer["groups"]] == [group]
    variant = _variant_id(medusa, sku)
    assert sorted(
        (Decimal(str(p["amount"])), p.get("min_quantity"), p.get("max_quantity"))
        for p in prices["price_list"]["prices"]
        if p["variant_id"] == variant
    ) == [(Decimal("8"), 10, None), (Decimal("10"), None, 9)]
    assert [r["status"] for r in dropped][-1] == "UPDATED"
    assert [p for p in after["price_list"]["prices"] if p["variant_id"] == variant] == []


def _variant_id(medusa: Medusa, sku: str) -> str:
    with medusa.admin() as admin:
        found = admin.get("/admin/product-variants", {"q": sku, "fields": "id,sku"})["variants"]
    (variant,) = [v for v in found if v["sku"] == sku]
    return str(variant["id"])


def test_medusa_keeps_the_erps_attributes_in_the_products_metadata(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, medusa, catalog=True)
    sku = f"AT-{topic_prefix[-9:-1]}"
    assert push_attributes(settings, sku) == ["CREATED", "UPDATED", "UNCHANGED"]
    with medusa.admin() as admin:
        found = admin.get("/admin/product-variants",
                          {"q": sku, "fields": "id,sku,product.metadata"})["variants"]  # fmt: skip
    (variant,) = [v for v in found if v["sku"] == sku]
    assert variant["product"]["metadata"]["erpbridge_attributes"] == {
        name: {"label": label, "value": value} for name, (label, value) in ATTRIBUTES_NOW.items()
    }


def _group_product(medusa: Medusa, handle: str) -> dict[str, Any]:
    """The product of `handle` as the admin sees it: title, status, its option's values, and
    per variant SKU its title, option value, prices and the ERP's attributes."""
    fields = "id,title,status,*options,options.values.value,*variants,*variants.prices,variants.options.value"
    with medusa.admin() as admin:
        (product,) = admin.get("/admin/products", {"handle": handle, "fields": fields})["products"]
    return {
        "title": product["title"],
        "status": product["status"],
        "values": sorted(v["value"] for o in product["options"] for v in o["values"]),
        "variants": {
            v["sku"]: (
                v["title"],
                [o["value"] for o in v["options"]],
                {p["currency_code"]: money(p["amount"]) for p in v["prices"]},
                sorted((v.get("metadata") or {}).get("erpbridge_attributes", {}).values(),
                       key=str),
            )
            for v in product["variants"]
        },
    }  # fmt: skip


def test_the_skus_of_one_erp_product_are_variants_of_one_medusa_product(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, medusa, catalog=True)
    tag = topic_prefix[-9:-1]
    small, large = f"TEE-S-{tag}", f"TEE-L-{tag}"
    # Last, the ERP groups the small one under another product: refused, Medusa moving no
    # variant between products.
    moved = catalog_item(small, "Moved", {"USD": "11"}, group=(f"tpl-x{tag}", "Other"))
    said, (made, changed, _, back, _, gone, again, _) = push_group(
        settings, tag, lambda: _group_product(medusa, f"erpbridge-group-tpl-{tag}"),
        (*GROUP_STEPS, *LAST_VARIANT_STEPS, lambda tag: [moved]),
    )  # fmt: skip
    # Per SKU in the order answered (one key, one partition).
    assert said == {
        small: ["CREATED", "UPDATED", "UNCHANGED", "UPDATED", "UPDATED", "UPDATED", "FAILED"],
        large: ["CREATED", "UPDATED", "UNCHANGED", "UPDATED"],
    }
    red = {"label": "Colour", "value": "Red"}
    assert made == {
        "title": f"Tee {tag}", "status": "published", "values": ["Red / L", "Red / S"],
        "variants": {
            small: ("Red / S", ["Red / S"], {"usd": Decimal("10.00")},
                    [red, {"label": "Size", "value": "S"}]),
            large: ("Red / L", ["Red / L"], {"usd": Decimal("12.00")},
                    [red, {"label": "Size", "value": "L"}]),
        },
    }  # fmt: skip
    # Off sale alone: unpriced, its value given up to its SKU (a replacement may take it), the
    # product still sold with its other variant.
    assert changed["status"] == "published"
    assert changed["variants"][small][1:3] == ([small], {})
    assert changed["variants"][large][:3] == ("Red / XL", ["Red / XL"], {"usd": Decimal("13.00")})
    assert "Red / XL" in changed["values"]
    # Sold again: priced again.
    assert back["variants"][small][2] == {"usd": Decimal("11.00")}
    # Neither sold: the product is drafted with its last priced variant, and published when
    # one is sold again.
    assert (gone["status"], gone["variants"][small][2], gone["variants"][large][2]) == (
        "draft", {}, {}
    )  # fmt: skip
    assert (again["status"], again["variants"][small][1:3]) == (
        "published", (["Red / S"], {"usd": Decimal("11.00")})
    )  # fmt: skip
    # Each variant keeps its own inventory item, whose level the stock push sets.
    with medusa.admin() as admin:
        for sku in (small, large):
            items = admin.get("/admin/inventory-items", {"sku": sku, "fields": "id,sku"})
            assert [i["sku"] for i in items["inventory_items"]] == [sku]


def test_a_group_product_drafted_by_erpbridge_is_published_by_a_new_sku_and_one_the_merchant_drafted_is_not(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, medusa, catalog=True)
    tag = topic_prefix[-9:-1]
    handle = f"erpbridge-group-tpl-d{tag}"

    def sku(size: str, active: bool = True) -> list[tuple[str, bytes]]:
        return [catalog_item(f"CAP-{size}-{tag}", "Cap", {"USD": "9"}, active=active,
                             attributes={"size": ("Size", size)}, group=(f"tpl-d{tag}", "Cap"))]  # fmt: skip

    def drafted_by_the_merchant_then(size: str) -> list[tuple[str, bytes]]:
        with medusa.admin() as admin:
            (product,) = admin.get("/admin/products", {"handle": handle, "fields": "id"})[
                "products"
            ]
            admin.post(f"/admin/products/{product['id']}", {"status": "draft"})
        return sku(size)

    def status() -> str:
        with medusa.admin() as admin:
            (product,) = admin.get("/admin/products", {"handle": handle, "fields": "status"})[
                "products"
            ]
        return str(product["status"])

    _, seen = push_group(settings, tag, status, (
        lambda tag: sku("S") + sku("M"),
        lambda tag: sku("M", active=False),
        lambda tag: sku("S", active=False),  # its last priced variant: drafted by erpbridge
        lambda tag: sku("L"),  # a new one sells it again
        lambda tag: drafted_by_the_merchant_then("XL"),  # kept so
    ))  # fmt: skip
    assert seen == ["published", "published", "draft", "published", "draft"]


def test_a_variant_of_the_merchants_own_product_gets_only_its_prices(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, medusa: Medusa
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, medusa, catalog=True)
    tag = topic_prefix[-9:-1]
    medium, large = f"SHIRT-M-{tag}", f"SHIRT-L-{tag}"
    with medusa.admin() as admin:
        admin.post("/admin/products", {
            "title": f"The merchant's shirt {tag}", "status": "published",
            "options": [{"title": "Size", "values": ["M", "L"]}],
            "variants": [{"title": size, "sku": sku, "options": {"Size": size},
                          "prices": [{"currency_code": "usd", "amount": 30}]}
                         for sku, size in ((medium, "M"), (large, "L"))]})  # fmt: skip
    group = (f"tpl-m{tag}", "Shirt")
    said, (repriced, _, unsold) = push_group(settings, tag, lambda: (_shown(medusa, medium), _shown(medusa, large)), (
        lambda tag: [catalog_item(medium, "Shirt", {"USD": "32"}, group=group)],
        lambda tag: [catalog_item(medium, "Shirt", {"USD": "32"}, group=group)],
        lambda tag: [catalog_item(medium, "Shirt", {"USD": "32"}, active=False, group=group)],
    ))  # fmt: skip
    assert said == {medium: ["UPDATED", "UNCHANGED", "UPDATED"]}
    title = f"The merchant's shirt {tag}"
    assert repriced == (
        {"title": title, "status": "published", "prices": {"usd": Decimal("32.00")}},
        {"title": title, "status": "published", "prices": {"usd": Decimal("30.00")}},
    )
    # Off sale: unpriced; the product and its other variant as the merchant keeps them.
    assert unsold[0] == {"title": title, "status": "published", "prices": {}}
    assert unsold[1] == repriced[1]


def test_a_price_list_or_group_the_merchant_deleted_is_made_again(
    topic_prefix: str, medusa: Medusa
) -> None:
    tag = topic_prefix[-9:-1].lower()
    sku, price_list = f"PD-{tag}", f"PD{tag}"
    contract = Contract(price_list, "Contract", "USD", ((0, Decimal("10")), (5, Decimal("9"))))
    # Medusa makes a product's handle of its title, one per store: the title is the test's.
    product = Product("medusa", sku, True, f"Kept contract product {tag}", None,
                      (("USD", Decimal("12")),), (contract,))  # fmt: skip
    buyer = Customer("medusa", f"CUST-PD-{tag}", f"Buyer {tag}", f"pd-{tag}@example.com",
                     None, None, price_list)  # fmt: skip
    title = f"erpbridge price list {price_list}"
    with httpx.Client() as client, medusa.admin() as admin:
        adapter = MedusaStorefront(client, medusa.url, medusa.secret_key(topic_prefix),
                                   {medusa.stock_location_id: WAREHOUSE})  # fmt: skip
        assert adapter.set_product(product).status is SyncStatus.CREATED
        assert adapter.set_customer(buyer).status is SyncStatus.CREATED
        (first,) = _price_lists(admin, title)
        admin.delete(f"/admin/price-lists/{first['id']}")
        with pytest.raises(StorefrontUnavailable):
            adapter.set_product(product)
        assert adapter.set_product(product).status is SyncStatus.UPDATED
        (again,) = _price_lists(admin, title)
        (group,) = again["rules"]["customer.groups.id"]
        # Medusa still takes members into a deleted group, so a sink sees it gone only when
        # it reads its groups again: at its next start.
        admin.delete(f"/admin/customer-groups/{group}")
        adapter = MedusaStorefront(client, medusa.url, medusa.secret_key(f"{topic_prefix}2"),
                                   {medusa.stock_location_id: WAREHOUSE})  # fmt: skip
        assert adapter.set_customer(buyer).status is SyncStatus.UPDATED
        (kept,) = _price_lists(admin, title)
        (new_group,) = kept["rules"]["customer.groups.id"]
        account = admin.get("/admin/customers", {"email": buyer.email, "fields": "id,*groups"})
    assert kept["id"] == again["id"] and new_group != group
    assert [g["id"] for g in account["customers"][0]["groups"]] == [new_group]
    assert sorted(Decimal(str(p["amount"])) for p in kept["prices"]) == [Decimal(9), Decimal(10)]


def _price_lists(admin: Any, description: str) -> list[dict[str, Any]]:
    fields = "id,description,*price_list_rules,*prices"
    found = admin.get("/admin/price-lists", {"fields": fields, "limit": 100})["price_lists"]
    return [p for p in found if p["description"] == description]
