"""`erpbridge connector erp-source` on the session's Tryton and broker: the ERP's products
and customers onto erp.catalog and erp.customers, each change published once, a restart
resuming from what the topics hold, a resync removing what the ERP no longer has."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from click.testing import Result

from connectors.erp.tryton import TrytonAdapter
from connectors.erp.tryton.master import TrytonMasterData
from streams.contracts.topics import ERP_CATALOG, ERP_CUSTOMERS, TopicCatalog
from streams.local.tryton import Tryton
from streams.ops.settings import Settings
from tests.connectors.erp.records import CODEC
from tests.streams.topology.agents.pipeline import read_all
from tests.support import on_tryton, run, settings_env


def _source(settings: Settings, *args: str) -> Result:
    env: dict[str, str | None] = {
        **settings_env(settings),
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "ERPBRIDGE_SCHEMA_REGISTRY_URL": None,
    }
    result = run(["connector", "erp-source", "--once", *args], env)
    assert result.exit_code == 0, result.output
    return result


def _records(settings: Settings, topic: str) -> list[tuple[str, dict[str, Any] | None]]:
    """(key, datum or None for a tombstone) of every record, in offset order per key."""
    return [
        (m.key().decode(), None if m.value() is None else CODEC.decode(m.value()).datum)  # type: ignore[union-attr]
        for m in read_all(settings, topic)
    ]


def _line(result: Result, kind: str) -> str:
    (line,) = (line for line in result.output.splitlines() if line.startswith(f"{kind}: "))
    return line


def _of(records: list[tuple[str, Any]], key: str) -> list[Any]:
    return [datum for k, datum in records if k == key]


def _new_product(tryton: Tryton, sku: str, price: str) -> int:
    async def create(erp: TrytonAdapter) -> int:
        (unit,) = await erp.rpc.search_read("product.uom", [["symbol", "=", "u"]], ["id"])
        (template,) = await erp.rpc.create(
            "product.template",
            [{
                "name": f"Test product {sku}", "code": sku, "type": "goods",
                "default_uom": unit["id"], "list_price": Decimal(price),
                "salable": True, "sale_uom": unit["id"], "products": [["create", [{}]]],
            }],
        )  # fmt: skip
        return template

    return on_tryton(tryton, create)


def _write(tryton: Tryton, model: str, ids: list[int], values: dict[str, Any]) -> None:
    async def write(erp: TrytonAdapter) -> None:
        await erp.rpc.model(model, "write", ids, values)

    on_tryton(tryton, write)


def _delete_product(tryton: Tryton, template: int) -> None:
    async def delete(erp: TrytonAdapter) -> None:
        await erp.rpc.model("product.template", "delete", [template])

    on_tryton(tryton, delete)


def test_changes_are_published_once_and_a_restart_resumes_from_the_topics(
    connector_settings: Settings, erp_topics: TopicCatalog, tryton: Tryton
) -> None:
    catalog = erp_topics.physical(ERP_CATALOG)
    customers = erp_topics.physical(ERP_CUSTOMERS)
    sku = f"SRC-{uuid.uuid4().hex[:8]}"
    template = _new_product(tryton, sku, "12.50")

    first = _source(connector_settings)
    assert "the topics hold 0 products and 0 customers" in first.output
    records = _records(connector_settings, catalog)
    (item,) = _of(records, sku)
    assert item["name"] == f"Test product {sku}"
    assert item["active"] is True and item["unit"] == "u" and item["source"] == "erp:tryton"
    assert [(p["currency"], p["amount"]) for p in item["list_prices"]] == [
        ("USD", Decimal("12.5000"))
    ]
    # The sample's products and customers are there too, one record each.
    beanie = _of(records, "SKU-0001")
    assert len(beanie) == 1 and beanie[0]["name"] == "Merino Wool Beanie"
    (ava,) = _of(_records(connector_settings, customers), "CUS-0001")
    assert ava["name"] == "Ava Thompson" and ava["email"] == "ava.thompson@example.com"
    assert ava["addresses"][0]["street"] == "350 S Grand Ave"
    assert ava["addresses"][0]["city"] == "Los Angeles"
    keys = {k for k, _ in _records(connector_settings, customers)}
    assert "1" not in keys, "the company's own party (code 1) is no customer"

    # Nothing changed: a new run (a restart) reads the topics and publishes nothing.
    again = _source(connector_settings)
    assert ", 0 published" in _line(again, "products"), again.output
    assert ", 0 published" in _line(again, "customers"), again.output
    assert len(_records(connector_settings, catalog)) == len(records)

    # A new list price (on the template's list-price row) and a deactivation: one record each.
    _write(tryton, "product.template", [template], {"list_price": Decimal("14.00")})
    _source(connector_settings)
    (_, repriced) = _of(_records(connector_settings, catalog), sku)
    assert repriced["list_prices"][0]["amount"] == Decimal("14.0000")
    _write(tryton, "product.template", [template], {"active": False})
    _source(connector_settings)
    history = _of(_records(connector_settings, catalog), sku)
    assert [d["active"] for d in history] == [True, True, False]
    assert len(_records(connector_settings, catalog)) == len(records) + 2


def test_a_resync_tombstones_what_the_erp_no_longer_has(
    connector_settings: Settings, erp_topics: TopicCatalog, tryton: Tryton
) -> None:
    catalog = erp_topics.physical(ERP_CATALOG)
    sku = f"SRC-{uuid.uuid4().hex[:8]}"
    template = _new_product(tryton, sku, "3.00")
    _source(connector_settings)
    _delete_product(tryton, template)

    # Polling cannot see a deleted row; a resync can.
    _source(connector_settings)
    assert _of(_records(connector_settings, catalog), sku)[-1] is not None
    resynced = _line(_source(connector_settings, "--resync"), "products")
    # What the ERP still has is unchanged, so the resync published nothing else.
    assert resynced.endswith(", 0 published (the rest unchanged), 1 removed"), resynced
    assert _of(_records(connector_settings, catalog), sku)[-1] is None


def test_a_price_lists_contract_prices_and_its_customers_are_published(
    connector_settings: Settings, erp_topics: TopicCatalog, tryton: Tryton
) -> None:
    catalog = erp_topics.physical(ERP_CATALOG)
    customers = erp_topics.physical(ERP_CUSTOMERS)
    tag = uuid.uuid4().hex[:8]
    sku, code = f"PL-{tag}", f"CUS-PL-{tag}"
    _new_product(tryton, sku, "20.00")

    async def contract(erp: TrytonAdapter) -> tuple[int, int]:
        (product,) = await erp.rpc.search_read("product.product", [["code", "=", sku]], ["id"])
        (price_list,) = await erp.rpc.create("product.price_list", [{
            "name": f"Wholesale {tag}", "company": erp.rpc.context["company"], "price": "list_price",
            "lines": [["create", [
                {"product": product["id"], "quantity": 10, "formula": "unit_price * 0.8"},
                {"product": product["id"], "formula": "unit_price * 0.9"},
            ]]],
        }])  # fmt: skip
        await erp.rpc.create("party.party", [{"name": f"Trade buyer {tag}", "code": code,
                                              "sale_price_list": price_list}])  # fmt: skip
        return price_list, product["id"]

    price_list, _ = on_tryton(tryton, contract)
    _source(connector_settings)
    (item,) = _of(_records(connector_settings, catalog), sku)
    assert item["price_lists"] == [{
        "price_list": str(price_list), "name": f"Wholesale {tag}", "currency": "USD",
        "tiers": [{"min_quantity": 0, "unit_price": Decimal("18.0000")},
                  {"min_quantity": 10, "unit_price": Decimal("16.0000")}],
    }]  # fmt: skip
    assert all(  # the list prices nothing else otherwise than at its list price
        str(price_list) not in [p["price_list"] for p in d["price_lists"]]
        for k, d in _records(connector_settings, catalog)
        if k != sku and d is not None
    )
    (buyer,) = _of(_records(connector_settings, customers), code)
    assert buyer["price_list"] == str(price_list)

    # A new contract price moves no product in Tryton, and still reaches erp.catalog.
    async def reprice(erp: TrytonAdapter) -> None:
        (line,) = await erp.rpc.search_read(
            "product.price_list.line", [["price_list", "=", price_list], ["quantity", "=", 10]],
            ["id"],
        )  # fmt: skip
        await erp.rpc.model("product.price_list", "write", [price_list], {
            "lines": [["write", [line["id"]], {"formula": "unit_price * 0.75"}]]})  # fmt: skip

    on_tryton(tryton, reprice)
    again = _source(connector_settings)
    assert ", 1 published" in _line(again, "products"), again.output
    (_, repriced) = _of(_records(connector_settings, catalog), sku)
    assert repriced["price_lists"][0]["tiers"][1] == {
        "min_quantity": 10,
        "unit_price": Decimal("15.0000"),
    }


def test_a_products_attributes_are_published_with_their_labels(
    connector_settings: Settings, erp_topics: TopicCatalog, tryton: Tryton
) -> None:
    # No overlap: what is re-read is re-read because the rules say so, not by the window.
    settings = connector_settings.model_copy(update={"erp_source_overlap_seconds": 0.0})
    catalog = erp_topics.physical(ERP_CATALOG)
    tag = uuid.uuid4().hex[:8]
    sku = f"AT-{tag}"
    template = _new_product(tryton, sku, "30.00")
    colour = on_tryton(tryton, lambda erp: _attributes(erp, tag, template, sku))
    _source(settings)
    (item,) = _of(_records(settings, catalog), sku)
    assert item["group"] == {"id": str(template), "name": f"Test product {sku}"}
    assert item["attributes"] == [
        {"name": f"colour_{tag}", "label": "Colour", "value": "Navy blue"},
        {"name": f"organic_{tag}", "label": "Organic", "value": "true"},
        {"name": f"weight_{tag}", "label": "Weight (kg)", "value": "0.25"},
    ]

    # A choice renamed in the ERP moves no product, and still reaches erp.catalog.
    _write(tryton, "product.attribute", [colour],
           {"selection": "red:Red\nnavy:Midnight navy"})  # fmt: skip
    again = _source(settings)
    assert ", 1 published" in _line(again, "products"), again.output
    (_, renamed) = _of(_records(settings, catalog), sku)
    assert renamed["attributes"][0]["value"] == "Midnight navy"


def test_an_attribute_deleted_in_the_erp_leaves_its_products_at_the_next_read(
    tryton: Tryton,
) -> None:
    tag = uuid.uuid4().hex[:8]
    sku = f"AD-{tag}"
    template = _new_product(tryton, sku, "30.00")

    async def read_delete_read(erp: TrytonAdapter) -> list[list[str]]:
        await _attributes(erp, tag, template, sku)
        reader = TrytonMasterData(erp.rpc)
        before = [i for i in await reader.products(None) if i.sku == sku]
        since = datetime.now(UTC)
        (weight,) = await erp.rpc.search_read(
            "product.attribute", [["name", "=", f"weight_{tag}"]], ["id"]
        )
        await erp.rpc.model("product.attribute", "delete", [weight["id"]])
        after = [i for i in await reader.products(since) if i.sku == sku]
        return [[a.name for a in i.attributes] for i in (*before, *after)]

    assert on_tryton(tryton, read_delete_read) == [
        [f"colour_{tag}", f"organic_{tag}", f"weight_{tag}"],
        [f"colour_{tag}", f"organic_{tag}"],
    ]


async def _attributes(erp: TrytonAdapter, tag: str, template: int, sku: str) -> int:
    """Three attributes of `tag` on the product `sku` of `template`; the selection's id."""
    colour, weight, organic = await erp.rpc.create("product.attribute", [
        {"name": f"colour_{tag}", "string": "Colour", "type_": "selection",
         "selection": "red:Red\nnavy:Navy blue"},
        {"name": f"weight_{tag}", "string": "Weight (kg)", "type_": "numeric", "digits": 2},
        {"name": f"organic_{tag}", "string": "Organic", "type_": "boolean"},
    ])  # fmt: skip
    (attribute_set,) = await erp.rpc.create("product.attribute.set", [{
        "name": f"Apparel {tag}", "attributes": [["add", [colour, weight, organic]]]}])  # fmt: skip
    await erp.rpc.model("product.template", "write", [template], {"attribute_set": attribute_set})
    (product,) = await erp.rpc.search_read("product.product", [["code", "=", sku]], ["id"])
    await erp.rpc.model("product.product", "write", [product["id"]], {"attributes": {
        f"colour_{tag}": "navy", f"weight_{tag}": Decimal("0.25"),
        f"organic_{tag}": True}})  # fmt: skip
    return int(colour)
