"""The storefront sink setting Shopify's levels, products and customers, on the session broker
against the Shopify double (Shopify's 2026-01 schema, its cost bucket, the userErrors of
inventorySetQuantities, productSet, customerSet and the B2B catalogs, price lists and
companies)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import graphql
import httpx
import pytest

from connectors.erp.master import ProductAttribute, ProductGroup
from connectors.storefront import shopify
from connectors.storefront.adapter import StorefrontRefused, StorefrontUnavailable, SyncStatus
from connectors.storefront.customers import Customer, customer_tag
from connectors.storefront.products import Contract, Product
from connectors.storefront.shopify import (
    ShopifyStock,
    gid,
    idempotency_key,
    metafield_key,
    refill_seconds,
    sku_query,
)
from streams.contracts.topics import (
    ERP_CATALOG,
    ERP_CUSTOMERS,
    STOREFRONT_CATALOG_RESULTS,
    STOREFRONT_CUSTOMER_RESULTS,
)
from streams.ops.settings import Settings, WebhookRoute
from tests.connectors.storefront.flow import (
    ATTRIBUTES_NOW,
    GROUP_STEPS,
    LAST_VARIANT_STEPS,
    PUSHED_CUSTOMERS,
    availability,
    catalog_item,
    dead_letters,
    drain,
    erp_customer,
    new_sink,
    produce,
    push_attributes,
    push_customers_twice,
    push_group,
    sink_settings,
    statuses,
)
from tests.connectors.webhooks.doubles import (
    SHOPIFY_TOKEN,
    Bucket,
    Double,
    shopify_admin,
    shopify_schema,
)

ITEM_A, ITEM_B = "gid://shopify/InventoryItem/1", "gid://shopify/InventoryItem/2"
LOCATION = "gid://shopify/Location/10"
STORE_ROOM = "gid://shopify/Location/20"


@pytest.fixture
def shop() -> Iterator[Double]:
    with shopify_admin() as double:
        double.stock_skus.update({ITEM_A: "SKU-A", ITEM_B: "SKU B:2"})
        double.stock.update({ITEM_A: {LOCATION: 3}, ITEM_B: {LOCATION: 0}})
        yield double


def _settings(
    kafka_broker: Any,
    topic_prefix: str,
    tmp_path: Path,
    shop: Double,
    warehouses: dict[str, str] | None = None,
) -> Settings:
    route = WebhookRoute(
        provider="shopify",
        warehouses=warehouses or {"10": "WH-1"},
        skus={"1": "SKU-A"},  # SKU B:2 is found by Shopify's search
        admin_url=shop.url,
        push_stock=True,
    )
    return sink_settings(
        kafka_broker, topic_prefix, tmp_path, {"main": route}, {"main": SHOPIFY_TOKEN}
    )


def _mutations(shop: Double) -> list[dict[str, Any]]:
    return [
        body["variables"]
        for _, _, body in shop.requests
        if "inventorySetQuantities" in body["query"]
    ]


def test_levels_are_set_compared_with_what_shopify_holds_and_idempotently(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, shop)
    sink = new_sink(settings)
    produce(
        settings,
        [
            ("SKU-A", availability("SKU-A", 7)),
            ("SKU B:2", availability("SKU B:2", 4)),
            ("SKU-C", availability("SKU-C", 2)),
        ],
    )
    sink.start()
    try:
        results = drain(sink, settings, 3)
    finally:
        sink.close()
    assert {r["sku"]: r["status"] for r in results} == {
        "SKU-A": "SET",
        "SKU B:2": "SET",
        "SKU-C": "UNKNOWN_SKU",
    }
    assert shop.stock == {ITEM_A: {LOCATION: 7}, ITEM_B: {LOCATION: 4}}
    assert shop.refused == []
    (mutation,) = _mutations(shop)
    # Compared with the levels Shopify reported, since the sink had set none.
    assert sorted(
        (q["inventoryItemId"], q["changeFromQuantity"], q["quantity"])
        for q in mutation["input"]["quantities"]
    ) == [(ITEM_A, 3, 7), (ITEM_B, 0, 4)]
    assert mutation["input"]["name"] == "available" and mutation["key"].startswith("erpbridge-")


def test_a_level_that_moved_since_the_sink_set_it_is_compared_again(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    settings = _settings(kafka_broker, topic_prefix, tmp_path, shop)
    sink = new_sink(settings)
    produce(settings, [("SKU-A", availability("SKU-A", 7))])
    sink.start()
    try:
        drain(sink, settings, 1)
        shop.stock[ITEM_A][LOCATION] = 6  # a sale on the shop, not yet known to erpbridge
        produce(settings, [("SKU-A", availability("SKU-A", 5))])
        results = drain(sink, settings, 2)
    finally:
        sink.close()
    assert [r["status"] for r in results] == ["SET", "SET"]
    assert shop.stock[ITEM_A][LOCATION] == 5
    # The second level was compared with the 7 the sink set, refused as stale, read again
    # (6) and set from there: Shopify applied nothing of the refused mutation.
    changes = [
        [(q["changeFromQuantity"], q["quantity"]) for q in m["input"]["quantities"]]
        for m in _mutations(shop)
    ]
    assert changes == [[(3, 7)], [(7, 5)], [(6, 5)]]


def test_a_level_shopify_refuses_fails_for_good_and_the_rest_are_set_without_it(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    warehouses = {"10": "WH-1", "20": "WH-2"}
    settings = _settings(kafka_broker, topic_prefix, tmp_path, shop, warehouses)
    shop.stock[ITEM_B][STORE_ROOM] = 1  # SKU-A is not stocked in the store room
    sink = new_sink(settings)
    produce(
        settings,
        [
            ("SKU-A", availability("SKU-A", 7, elsewhere={"WH-2": 5})),
            ("SKU B:2", availability("SKU B:2", 4, elsewhere={"WH-2": 2})),
        ],
    )
    sink.start()
    try:
        results = drain(sink, settings, 4)
    finally:
        sink.close()
    by_level = {(r["sku"], r["warehouse_id"]): r for r in results}
    refused = by_level["SKU-A", "WH-2"]
    assert (refused["status"], refused["permanent"]) == ("FAILED", True)
    assert "ITEM_NOT_STOCKED_AT_LOCATION" in refused["message"]
    others = [r for level, r in by_level.items() if level != ("SKU-A", "WH-2")]
    assert [(r["status"], r["permanent"]) for r in others] == [("SET", False)] * 3
    assert shop.stock == {ITEM_A: {LOCATION: 7}, ITEM_B: {LOCATION: 4, STORE_ROOM: 2}}
    first, second = _mutations(shop)
    assert len(first["input"]["quantities"]) == 4 and len(second["input"]["quantities"]) == 3
    [(key, reason, error)] = dead_letters(settings)
    assert (key, reason) == ("SKU-A", "storefront-refused")
    assert "location 20 (warehouse WH-2)" in error and "ITEM_NOT_STOCKED_AT_LOCATION" in error


def test_a_throttled_shop_is_waited_for_as_its_bucket_says(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    # Reading the level (2 points) leaves too little for the mutation (10): Shopify says
    # THROTTLED with what is missing, which comes back at 5 points a second.
    shop.bucket = Bucket(maximum=10.0, restore=5.0)
    settings = _settings(kafka_broker, topic_prefix, tmp_path, shop)
    sink = new_sink(settings)
    produce(settings, [("SKU-A", availability("SKU-A", 1))])
    sink.start()
    try:
        (result,) = drain(sink, settings, 1)
    finally:
        sink.close()
    assert "Throttled" in shop.refused
    assert (result["status"], shop.stock[ITEM_A][LOCATION]) == ("SET", 1)
    assert result["attempts"] >= 2


def test_skus_are_searched_quoted() -> None:
    assert sku_query(["A-1", "it's"]) == "sku:'A-1' OR sku:'it\\'s'"


def test_ids_keys_and_waits_are_derived_from_what_shopify_gives() -> None:
    assert gid("Location", "905684977") == "gid://shopify/Location/905684977"
    assert gid("Location", LOCATION) == LOCATION
    one = [{"inventoryItemId": ITEM_A, "quantity": 5, "changeFromQuantity": 7}]
    moved = [{"inventoryItemId": ITEM_A, "quantity": 5, "changeFromQuantity": 6}]
    assert idempotency_key(one) == idempotency_key([dict(one[0])]) != idempotency_key(moved)
    throttled = {
        "extensions": {
            "cost": {
                "requestedQueryCost": 10,
                "throttleStatus": {"currentlyAvailable": 8, "restoreRate": 5.0},
            }
        }
    }
    assert refill_seconds(throttled) == pytest.approx(0.4)
    assert refill_seconds({}) is None


def test_the_erps_products_are_set_on_shopify_with_product_set(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    shop.shopify_products["gid://shopify/Product/1"] = {
        "id": "gid://shopify/Product/1", "title": "Old name", "descriptionHtml": "",
        "status": "ACTIVE", "productOptions": [{"name": "Title"}],
        "variants": [{"id": "gid://shopify/ProductVariant/11", "sku": "SKU-A", "price": "10.00",
                      "tracked": True}],
    }  # fmt: skip
    route = WebhookRoute(provider="shopify", admin_url=shop.url, push_catalog=True,
                         currency="USD")  # fmt: skip
    settings = sink_settings(kafka_broker, topic_prefix, tmp_path, {"main": route},
                             {"main": SHOPIFY_TOKEN})  # fmt: skip
    records = [
        catalog_item("SKU-A", "Merino Wool Beanie", {"USD": "24.9000", "EUR": "22.5000"}),
        catalog_item("SKU-NEW", "Waxed Canvas Tote", {"USD": "59.0000"}),
        catalog_item("SKU-EUR", "Euro only", {"EUR": "9.0000"}),
    ]
    sink = new_sink(settings)
    produce(settings, records, ERP_CATALOG)
    sink.start()
    try:
        drain(sink, settings, 3, STOREFRONT_CATALOG_RESULTS)
        gone = catalog_item("SKU-A", "Merino Wool Beanie", {}, active=False)
        produce(settings, [records[1], gone], ERP_CATALOG)
        results = drain(sink, settings, 5, STOREFRONT_CATALOG_RESULTS)
    finally:
        sink.close()

    # Per SKU in the order answered (one key, one partition).
    assert statuses(results, "sku") == {
        "SKU-A": ["UPDATED", "UPDATED"], "SKU-NEW": ["CREATED", "UNCHANGED"], "SKU-EUR": ["FAILED"]
    }  # fmt: skip
    products = {p["variants"][0]["sku"]: p for p in shop.shopify_products.values()}
    assert len(products) == 2
    beanie = products["SKU-A"]
    assert (beanie["title"], beanie["status"], beanie["variants"][0]["price"]) == (
        "Merino Wool Beanie", "ARCHIVED", "24.90"
    )  # fmt: skip
    assert beanie["variants"][0]["id"] == "gid://shopify/ProductVariant/11"  # kept, not replaced
    tote = products["SKU-NEW"]
    assert (tote["status"], tote["descriptionHtml"], tote["variants"][0]["price"]) == (
        "ACTIVE", "Waxed Canvas Tote, from the ERP", "59.00"
    )  # fmt: skip
    assert tote["variants"][0]["tracked"] is True
    (failed,) = [r for r in results if r["status"] == "FAILED"]
    assert failed["permanent"] and "no list price in the route's currency" in failed["message"]
    assert [key for key, _, _ in dead_letters(settings, ERP_CATALOG)] == ["SKU-EUR"]


def _catalog_settings(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> Settings:
    route = WebhookRoute(provider="shopify", admin_url=shop.url, push_catalog=True,
                         currency="USD")  # fmt: skip
    return sink_settings(kafka_broker, topic_prefix, tmp_path, {"main": route},
                         {"main": SHOPIFY_TOKEN})  # fmt: skip


def _grouped(shop: Double, handle: str) -> dict[str, Any] | None:
    """The product of `handle` as the double holds it: title, status, its option's values,
    per variant SKU its price, option value and metafields."""
    found = [p for p in shop.shopify_products.values() if p.get("handle") == handle]
    if not found:
        return None
    (product,) = found
    return {
        "title": product["title"], "status": product["status"],
        # Sorted: which SKU comes first depends on the partitions.
        "values": sorted(v["name"] for o in product["productOptions"] for v in o["values"]),
        "variants": {
            v["sku"]: (v["price"], [o["name"] for o in v["optionValues"]],
                       {key: m["value"] for (_, key), m in v["metafields"].items()})
            for v in product["variants"]
        },
    }  # fmt: skip


def test_the_skus_of_one_erp_product_are_variants_of_one_shopify_product(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    settings = _catalog_settings(kafka_broker, topic_prefix, tmp_path, shop)
    small, large, handle = "TEE-S-t1", "TEE-L-t1", "erpbridge-group-tpl-t1"
    # Neither sold: the product goes with its last variant; the small one sold again: the
    # product comes back with it alone.
    said, (made, changed, _, back, _, gone, again) = push_group(
        settings, "t1", lambda: copy.deepcopy(_grouped(shop, handle)),
        (*GROUP_STEPS, *LAST_VARIANT_STEPS),
    )  # fmt: skip
    assert said == {
        small: ["CREATED", "UPDATED", "UNCHANGED", "CREATED", "UPDATED", "CREATED"],
        large: ["CREATED", "UPDATED", "UNCHANGED", "UPDATED"],
    }
    assert made == {
        "title": "Tee t1", "status": "ACTIVE", "values": ["Red / L", "Red / S"],
        "variants": {small: ("10.00", ["Red / S"], {"colour": "Red", "size": "S"}),
                     large: ("12.00", ["Red / L"], {"colour": "Red", "size": "L"})},
    }  # fmt: skip
    # The small one deleted from the product; the large one resized.
    assert changed is not None and changed["status"] == "ACTIVE"
    assert changed["variants"] == {large: ("13.00", ["Red / XL"], {"colour": "Red", "size": "XL"})}
    # Sold again: a variant again.
    assert back is not None and set(back["variants"]) == {small, large}
    # The last variant stays with its archived product (Shopify keeps one per product).
    assert gone is not None and (gone["status"], set(gone["variants"])) == ("ARCHIVED", {large})
    assert again is not None and again["status"] == "ACTIVE"
    assert again["variants"] == {small: ("11.00", ["Red / S"], {"colour": "Red", "size": "S"})}
    # Never productSet on the group's product after it was made: it would drop siblings.
    sets = [b for _, _, b in shop.requests if "productSet(" in b["query"]]
    assert len(sets) == 1


def test_a_group_product_made_meanwhile_by_another_sink_is_found_at_the_retry(
    adapter: ShopifyStock, shop: Double
) -> None:
    def size(sku: str, value: str) -> Product:
        return Product("main", sku, True, "Tee t2", None, (("USD", Decimal("10")),),
                       attributes=(ProductAttribute("size", "Size", value),),
                       group=ProductGroup("tpl-t2", "Tee t2"))  # fmt: skip

    assert adapter.set_product(size("TEE-L-t2", "L")).status is SyncStatus.CREATED
    # The other sink made it after this one looked for it (Shopify's search lags too).
    shop.hidden_handles.add("erpbridge-group-tpl-t2")
    with pytest.raises(StorefrontUnavailable, match="HANDLE_NOT_UNIQUE"):
        adapter.set_product(size("TEE-S-t2", "S"))
    shop.hidden_handles.clear()
    assert adapter.set_product(size("TEE-S-t2", "S")).status is SyncStatus.CREATED
    (product,) = shop.shopify_products.values()
    assert sorted(v["sku"] for v in product["variants"]) == ["TEE-L-t2", "TEE-S-t2"]


def test_a_group_product_the_merchant_archived_keeps_its_variants_and_a_moved_sku_is_refused(
    adapter: ShopifyStock, shop: Double
) -> None:
    def size(sku: str, value: str, group: str = "tpl-t3") -> Product:
        return Product("main", sku, True, "Tee t3", None, (("USD", Decimal("10")),),
                       attributes=(ProductAttribute("size", "Size", value),),
                       group=ProductGroup(group, "Tee t3"))  # fmt: skip

    adapter.set_product(size("TEE-L-t3", "L"))
    (product,) = shop.shopify_products.values()
    product["status"] = "ARCHIVED"  # by the merchant, not with its last variant
    assert adapter.set_product(size("TEE-S-t3", "S")).status is SyncStatus.CREATED
    assert product["status"] == "ARCHIVED"
    assert sorted(v["sku"] for v in product["variants"]) == ["TEE-L-t3", "TEE-S-t3"]
    # Grouped elsewhere by the ERP now: Shopify moves no variant, so it is refused, saying so.
    with pytest.raises(StorefrontRefused, match="now groups it under tpl-t4"):
        adapter.set_product(size("TEE-S-t3", "S", group="tpl-t4"))


def test_a_variant_of_the_merchants_own_product_gets_only_its_price(
    adapter: ShopifyStock, shop: Double
) -> None:
    size = {"name": "Size", "values": [{"name": "M"}, {"name": "L"}]}
    variants = [{"id": f"gid://shopify/ProductVariant/{n}", "sku": sku, "price": "30.00",
                 "tracked": True, "optionValues": [{"optionName": "Size", "name": value}]}
                for n, sku, value in ((31, "SHIRT-M", "M"), (32, "SHIRT-L", "L"))]  # fmt: skip
    shop.shopify_products["gid://shopify/Product/3"] = {
        "id": "gid://shopify/Product/3", "handle": "shirt", "title": "The merchant's shirt",
        "descriptionHtml": "Theirs", "status": "ACTIVE", "productOptions": [size],
        "variants": variants,
    }  # fmt: skip

    def shirt(active: bool) -> Product:
        return Product("main", "SHIRT-M", active, "Shirt", "Ours",
                       (("USD", Decimal("32")),), group=ProductGroup("tpl-9", "Shirt"))  # fmt: skip

    assert adapter.set_product(shirt(True)).status is SyncStatus.UPDATED
    (product,) = shop.shopify_products.values()
    assert (product["title"], product["descriptionHtml"]) == ("The merchant's shirt", "Theirs")
    assert [(v["sku"], v["price"]) for v in product["variants"]] == [
        ("SHIRT-M", "32.00"), ("SHIRT-L", "30.00")
    ]  # fmt: skip
    assert adapter.set_product(shirt(True)).status is SyncStatus.UNCHANGED
    with pytest.raises(StorefrontRefused, match="take it off sale there by hand"):
        adapter.set_product(shirt(False))
    assert len(product["variants"]) == 2


def test_the_erps_customers_are_kept_as_one_tagged_account_each(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    old_home = {"firstName": "Ann", "address1": "9 Old Rd", "city": "Salem",
                "provinceCode": "OR", "zip": "97301", "countryCode": "US"}  # fmt: skip
    shop.shopify_customers.update({
        # Registered in the shop before erpbridge knew it.
        "gid://shopify/Customer/1": {"id": "gid://shopify/Customer/1", "firstName": "Ann",
                                     "email": "ann@example.com", "phone": None, "tags": ["vip"],
                                     "addresses": [old_home]},
        # Another ERP customer's account.
        "gid://shopify/Customer/2": {"id": "gid://shopify/Customer/2", "firstName": "Bob",
                                     "email": "shared@example.com", "phone": None,
                                     "tags": [customer_tag("CUST-BOB")], "addresses": []},
    })  # fmt: skip
    route = WebhookRoute(provider="shopify", admin_url=shop.url, push_customers=True)
    settings = sink_settings(kafka_broker, topic_prefix, tmp_path, {"main": route},
                             {"main": SHOPIFY_TOKEN})  # fmt: skip
    _, results = push_customers_twice(settings)

    # Per customer in the order answered (one key, one partition).
    assert statuses(results, "customer_id") == PUSHED_CUSTOMERS
    accounts = shop.shopify_customers
    assert len(accounts) == 3
    (jane,) = [c for c in accounts.values() if customer_tag("CUST-NEW") in c["tags"]]
    assert (jane["email"], jane["firstName"], jane["phone"]) == (
        "jane.doe@example.com", "Jane Doe", "+1 555 0100"
    )  # fmt: skip
    assert jane["addresses"] == [{"firstName": "Jane Doe", "address1": "2 Elm St",
                                  "city": "Springfield", "provinceCode": "IL", "zip": "62701",
                                  "countryCode": "US"}]  # fmt: skip
    ann = accounts["gid://shopify/Customer/1"]
    assert (ann["firstName"], ann["tags"]) == ("Ann Smith", ["vip", customer_tag("CUST-ANN")])
    # The ERP's address first, the one she gave the shop kept.
    assert [a["address1"] for a in ann["addresses"]] == ["1 Main St", "9 Old Rd"]
    assert accounts["gid://shopify/Customer/2"]["firstName"] == "Bob"
    (failed,) = [r for r in results if r["status"] == "FAILED"]
    assert failed["permanent"] and "another ERP customer's" in failed["message"]
    assert [key for key, _, _ in dead_letters(settings, ERP_CUSTOMERS)] == ["CUST-CLASH"]


def test_shopify_charges_the_erps_customers_their_price_lists_prices_through_b2b_catalogs(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    """An ERP price list becomes a company-location catalog with a price list of its own, its
    first tier the variant's fixed price and the rest quantity price breaks; its customer a
    company whose location is in that catalog, with the account as a contact there."""
    route = WebhookRoute(provider="shopify", admin_url=shop.url, push_catalog=True,
                         push_customers=True, currency="USD")  # fmt: skip
    settings = sink_settings(kafka_broker, topic_prefix, tmp_path, {"main": route},
                             {"main": SHOPIFY_TOKEN})  # fmt: skip
    contract = {"PL1": [(0, "10.0000"), (10, "8.5000"), (50, "7.0000")]}
    item = catalog_item("SKU-PL", "Contract product", {"USD": "12.0000"}, contracts=contract)
    buyer = erp_customer("CUST-PL", "Trade Buyer", "buyer@example.com", price_list="PL1")
    sink = new_sink(settings)
    # The customer first: its price list's catalog is made before any product is priced in it.
    produce(settings, [buyer], ERP_CUSTOMERS)
    sink.start()
    try:
        (account,) = drain(sink, settings, 1, STOREFRONT_CUSTOMER_RESULTS)
        produce(settings, [item], ERP_CATALOG)
        (made,) = drain(sink, settings, 1, STOREFRONT_CATALOG_RESULTS)
        produce(settings, [item], ERP_CATALOG)
        produce(settings, [buyer], ERP_CUSTOMERS)
        again = drain(sink, settings, 2, STOREFRONT_CATALOG_RESULTS)
        again_account = drain(sink, settings, 2, STOREFRONT_CUSTOMER_RESULTS)
        priced = {pl: p["prices"] for pl, p in shop.price_lists.items()}
        # The ERP stops pricing the product in PL1, and moves the customer off it.
        produce(settings, [catalog_item("SKU-PL", "Contract product", {"USD": "12.0000"})],
                ERP_CATALOG)  # fmt: skip
        produce(settings, [erp_customer("CUST-PL", "Trade Buyer", "buyer@example.com")],
                ERP_CUSTOMERS)  # fmt: skip
        dropped = drain(sink, settings, 3, STOREFRONT_CATALOG_RESULTS)
        moved = drain(sink, settings, 3, STOREFRONT_CUSTOMER_RESULTS)
    finally:
        sink.close()

    assert (account["status"], made["status"]) == ("CREATED", "CREATED")
    assert (again[-1]["status"], again_account[-1]["status"]) == ("UNCHANGED", "UNCHANGED")
    (catalog,) = shop.catalogs.values()
    (price_list,) = shop.price_lists.values()
    assert (catalog["title"], catalog["status"], catalog["priceList"]) == (
        "erpbridge price list PL1", "ACTIVE", price_list["id"]
    )  # fmt: skip
    assert (price_list["name"], price_list["currency"]) == ("erpbridge price list PL1", "USD")
    (variant,) = [v["id"] for p in shop.shopify_products.values() for v in p["variants"]]
    assert priced[price_list["id"]][variant]["price"] == "10.00"
    assert [(b["minimumQuantity"], b["price"]) for b in priced[price_list["id"]][variant][
        "breaks"]] == [(10, "8.50"), (50, "7.00")]  # fmt: skip
    (company,) = shop.companies.values()
    assert (company["externalId"], company["name"]) == ("CUST-PL", "Trade Buyer")
    (location,) = company["locations"]
    (contact,) = company["contacts"]
    assert contact["customer"] == account["storefront_id"]
    assert contact["roles"] == [(company["roles"][0]["id"], location["id"])]
    # While the customer bought at PL1, its location was the catalog's; after, no more.
    assert (dropped[-1]["status"], moved[-1]["status"]) == ("UPDATED", "UPDATED")
    assert price_list["prices"] == {}
    assert catalog["locations"] == []


def test_a_contract_price_shopify_refuses_fails_for_good_with_its_words(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    """A catalog whose price list the merchant made in another currency: Shopify refuses the
    fixed price (PRICE_ADD_CURRENCY_MISMATCH), and the product is dead-lettered with that."""
    shop.catalogs["gid://shopify/CompanyLocationCatalog/1"] = {
        "id": "gid://shopify/CompanyLocationCatalog/1", "title": "erpbridge price list PL9",
        "status": "ACTIVE", "priceList": "gid://shopify/PriceList/1", "locations": [],
    }  # fmt: skip
    shop.price_lists["gid://shopify/PriceList/1"] = {
        "id": "gid://shopify/PriceList/1", "name": "erpbridge price list PL9", "currency": "EUR",
        "catalog": "gid://shopify/CompanyLocationCatalog/1", "prices": {},
    }  # fmt: skip
    route = WebhookRoute(provider="shopify", admin_url=shop.url, push_catalog=True,
                         currency="USD")  # fmt: skip
    settings = sink_settings(kafka_broker, topic_prefix, tmp_path, {"main": route},
                             {"main": SHOPIFY_TOKEN})  # fmt: skip
    item = catalog_item("SKU-PL", "Contract product", {"USD": "12.0000"},
                        contracts={"PL9": [(0, "10.0000")]})  # fmt: skip
    sink = new_sink(settings)
    produce(settings, [item], ERP_CATALOG)
    sink.start()
    try:
        (result,) = drain(sink, settings, 1, STOREFRONT_CATALOG_RESULTS)
    finally:
        sink.close()
    assert (result["status"], result["permanent"]) == ("FAILED", True)
    assert "PRICE_ADD_CURRENCY_MISMATCH" in result["message"]
    assert [key for key, _, _ in dead_letters(settings, ERP_CATALOG)] == ["SKU-PL"]


def test_the_erps_attributes_are_the_products_erpbridge_metafields(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, shop: Double
) -> None:
    route = WebhookRoute(provider="shopify", admin_url=shop.url, push_catalog=True,
                         currency="USD")  # fmt: skip
    settings = sink_settings(kafka_broker, topic_prefix, tmp_path, {"main": route},
                             {"main": SHOPIFY_TOKEN})  # fmt: skip
    # A product the shop has, with a metafield of the merchant's own.
    care = {"namespace": "custom", "key": "care", "type": "single_line_text_field",
            "value": "Hand wash"}  # fmt: skip
    shop.shopify_products["gid://shopify/Product/1"] = {
        "id": "gid://shopify/Product/1", "title": "Attributed product",
        "descriptionHtml": "Attributed product, from the ERP", "status": "ACTIVE",
        "productOptions": [{"name": "Title"}], "metafields": {("custom", "care"): care},
        "variants": [{"id": "gid://shopify/ProductVariant/11", "sku": "SKU-AT", "price": "10.00",
                      "tracked": True}],
    }  # fmt: skip
    assert push_attributes(settings, "SKU-AT") == ["UPDATED", "UPDATED", "UNCHANGED"]
    (product,) = shop.shopify_products.values()
    ours = {
        key: m for (namespace, key), m in product["metafields"].items() if namespace != "custom"
    }
    assert {key: m["value"] for key, m in ours.items()} == {
        name: value for name, (_, value) in ATTRIBUTES_NOW.items()
    }  # the dropped one deleted, the changed one set again
    assert {(m["namespace"], m["type"]) for m in ours.values()} == {
        ("erpbridge", "single_line_text_field")
    }
    assert product["metafields"][("custom", "care")] == care  # the merchant's kept


def test_metafield_keys_are_what_shopify_allows() -> None:
    assert metafield_key("colour") == "colour"
    assert metafield_key("size.eu") == "size_eu"
    assert metafield_key("x") == "x_"
    assert len(metafield_key("a" * 80)) == 64


@pytest.fixture
def adapter(shop: Double) -> Iterator[ShopifyStock]:
    with httpx.Client() as client:
        yield ShopifyStock(client, shop.url, SHOPIFY_TOKEN, {}, {})


def _buyer(price_list: str | None = "PL1") -> Customer:
    return Customer("main", "CUST-PL", "Trade Buyer", "buyer@example.com", None, None, price_list)


def test_a_contact_left_without_its_role_by_a_crash_gets_it(
    shop: Double, adapter: ShopifyStock
) -> None:
    adapter.set_customer(_buyer())
    (company,) = shop.companies.values()
    (contact,) = company["contacts"]
    contact["roles"].clear()  # as if the worker died between the contact and its role
    assert adapter.set_customer(_buyer()).status is SyncStatus.UPDATED
    assert contact["roles"] == [(company["roles"][0]["id"], company["locations"][0]["id"])]
    assert adapter.set_customer(_buyer()).status is SyncStatus.UNCHANGED


def test_a_company_made_but_not_yet_searchable_is_tried_again_not_refused(
    shop: Double, adapter: ShopifyStock
) -> None:
    adapter.set_customer(_buyer())
    (company,) = shop.companies.values()
    shop.unindexed.add(company["id"])  # an answer lost, and Shopify's search behind
    with pytest.raises(StorefrontUnavailable, match="search does not show yet"):
        adapter.set_customer(_buyer())
    shop.unindexed.clear()
    assert adapter.set_customer(_buyer()).status is SyncStatus.UNCHANGED
    assert len(shop.companies) == 1


def test_a_catalog_the_merchant_deleted_is_made_again_at_the_retry(
    shop: Double, adapter: ShopifyStock
) -> None:
    product = Product("main", "SKU-PL", True, "Contract product", None,
                      (("USD", Decimal("12")),),
                      (Contract("PL1", "Contract PL1", "USD", ((0, Decimal("10")),)),))  # fmt: skip
    shop.bucket = Bucket(10_000.0, 1_000.0)  # no throttling between these direct calls
    assert adapter.set_product(product).status is SyncStatus.CREATED
    shop.catalogs.clear()  # the merchant deleted the catalog and its price list
    shop.price_lists.clear()
    with pytest.raises(StorefrontUnavailable):
        adapter.set_product(product)
    assert adapter.set_product(product).status is SyncStatus.UPDATED
    (price_list,) = shop.price_lists.values()
    assert [p["price"] for p in price_list["prices"].values()] == ["10.00"]


def _contract_product(*contracts: Contract) -> Product:
    return Product("main", "SKU-PL", True, "Contract product", None,
                   (("USD", Decimal("12")),), contracts)  # fmt: skip


def _breaks(shop: Double) -> dict[str, list[tuple[str, list[tuple[int, str]]]]]:
    """Each price list's prices by name: (fixed price, [(minimum, break price)])."""
    return {
        p["name"]: [(v["price"], [(b["minimumQuantity"], b["price"]) for b in v["breaks"]])
                    for v in p["prices"].values()]
        for p in shop.price_lists.values()
    }  # fmt: skip


def test_a_contracts_new_breaks_replace_the_old_ones_once(
    shop: Double, adapter: ShopifyStock
) -> None:
    shop.bucket = Bucket(10_000.0, 1_000.0)
    first = Contract("PL1", "Contract PL1", "USD", ((0, Decimal("10")), (10, Decimal("9"))))
    then = Contract("PL1", "Contract PL1", "USD", ((0, Decimal("9.5")), (20, Decimal("8"))))
    assert adapter.set_product(_contract_product(first)).status is SyncStatus.CREATED
    assert adapter.set_product(_contract_product(then)).status is SyncStatus.UPDATED
    assert adapter.set_product(_contract_product(then)).status is SyncStatus.UNCHANGED
    assert _breaks(shop) == {"erpbridge price list PL1": [("9.50", [(20, "8.00")])]}


def test_a_customer_moved_to_another_price_list_buys_at_it_alone(
    shop: Double, adapter: ShopifyStock
) -> None:
    shop.bucket = Bucket(10_000.0, 1_000.0)
    assert adapter.set_customer(_buyer("PL1")).status is SyncStatus.CREATED
    assert adapter.set_customer(_buyer("PL2")).status is SyncStatus.UPDATED
    assert adapter.set_customer(_buyer("PL2")).status is SyncStatus.UNCHANGED
    (company,) = shop.companies.values()
    location = company["locations"][0]["id"]
    assert {c["title"]: c["locations"] for c in shop.catalogs.values()} == {
        "erpbridge price list PL1": [], "erpbridge price list PL2": [location]
    }  # fmt: skip


def test_a_price_list_left_by_a_deleted_catalog_is_given_to_the_new_one(
    shop: Double, adapter: ShopifyStock
) -> None:
    shop.bucket = Bucket(10_000.0, 1_000.0)
    shop.price_lists["gid://shopify/PriceList/1"] = {
        "id": "gid://shopify/PriceList/1", "name": "erpbridge price list PL7", "currency": "USD",
        "catalog": None, "prices": {},
    }  # fmt: skip
    contract = Contract("PL7", "Contract PL7", "USD", ((0, Decimal("10")),))
    assert adapter.set_product(_contract_product(contract)).status is SyncStatus.CREATED
    (catalog,) = shop.catalogs.values()
    assert catalog["priceList"] == "gid://shopify/PriceList/1"
    assert _breaks(shop) == {"erpbridge price list PL7": [("10.00", [])]}


def test_every_graphql_document_of_the_adapter_is_valid_against_shopifys_schema() -> None:
    documents = {
        name: text
        for name, text in vars(shopify).items()
        if isinstance(text, str) and text.lstrip().startswith(("query ", "mutation "))
    }
    assert {"VARIANT", "GROUP_PRODUCT", "ADD_VARIANTS", "SET_PRODUCT"} <= set(documents)
    for name, text in documents.items():
        errors = graphql.validate(shopify_schema(), graphql.parse(text))
        assert not errors, f"{name}: {[e.message for e in errors]}"
