"""How Tryton's rows become erp.catalog's and erp.customers' records (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from connectors.erp.master import (
    ListPrice,
    PriceListPrice,
    PriceTier,
    ProductAttribute,
    ProductGroup,
    catalog_datum,
)
from connectors.erp.tryton.master import (
    attribute_value,
    catalog_item,
    changed_since,
    customer,
    price_list_price,
)
from tests.connectors.erp.records import CODEC

EARLY, LATE = datetime(2026, 12, 1, 9, 0), datetime(2026, 12, 2, 17, 30)


def _product(**changes: Any) -> dict[str, Any]:
    row = {
        "id": 7, "code": "SKU-7", "name": "Beanie", "description": "", "active": True,
        "list_price_used": Decimal("24.00"), "default_uom.": {"symbol": "u"},
        "write_date": None, "create_date": EARLY,
        "template": 70,
        "template.": {"active": True, "salable": True, "write_date": LATE, "create_date": EARLY,
                      "name": "Beanie"},
    }  # fmt: skip
    return {**row, **changes}


def _address(id: int, sequence: int | None, **changes: Any) -> dict[str, Any]:
    row = {
        "id": id, "party": 3, "party_name": "", "street": "350 S Grand Ave\nSuite 9",
        "city": "Los Angeles", "postal_code": "90071", "country.": {"code": "US"},
        "subdivision.": {"code": "US-CA"}, "sequence": sequence, "active": True,
        "write_date": None, "create_date": EARLY,
    }  # fmt: skip
    return {**row, **changes}


def test_a_product_is_its_templates_name_and_price_at_the_latest_change_of_either() -> None:
    item = catalog_item(_product(), "USD")
    assert (item.sku, item.name, item.unit, item.erp_id) == ("SKU-7", "Beanie", "u", "7")
    assert item.description is None  # Tryton's empty text is no description
    assert item.list_prices == (ListPrice("USD", Decimal("24.00")),)
    assert item.group == ProductGroup("70", "Beanie")  # its template
    assert item.updated_at == LATE.replace(tzinfo=UTC)
    assert item.active


def test_a_product_is_inactive_when_it_or_its_template_is() -> None:
    assert not catalog_item(_product(active=False), "USD").active
    template = {"active": False, "write_date": None, "create_date": EARLY, "name": "Beanie"}
    assert not catalog_item(_product(**{"template.": template}), "USD").active


def test_a_product_without_a_price_has_none_and_still_encodes() -> None:
    item = catalog_item(_product(list_price_used=None), "USD")
    assert item.list_prices == ()
    CODEC.encode("erpbridge.CatalogItem", catalog_datum(item, "erp:tryton"), topic="erp.catalog")


def test_a_customers_active_addresses_come_in_tryton_order_and_count_as_its_changes() -> None:
    party = {
        "id": 3, "code": "CUS-3", "name": "Ava", "email": "", "phone": "+1 555 0100",
        "active": True, "sale_price_list": None, "write_date": None, "create_date": EARLY,
    }  # fmt: skip
    addresses = [
        _address(12, 2, city="Pasadena"),
        _address(11, 1, write_date=LATE),
        _address(13, None, city="Gone", active=False),
    ]
    made = customer(party, addresses)
    assert [a.city for a in made.addresses] == ["Los Angeles", "Pasadena"]
    first = made.addresses[0]
    assert (first.country, first.region, first.street) == (
        "US",
        "US-CA",
        "350 S Grand Ave\nSuite 9",
    )
    assert first.name is None and made.email is None and made.phone == "+1 555 0100"
    assert made.updated_at == LATE.replace(tzinfo=UTC)


def test_changed_since_asks_for_any_change_at_or_after_the_time_in_trytons_utc() -> None:
    assert changed_since(("write_date",), None) == []
    local = datetime(2026, 12, 2, 18, 30, tzinfo=timezone(timedelta(hours=1)))
    assert changed_since(("write_date", "create_date"), local) == [
        "OR", ["write_date", ">=", LATE], ["create_date", ">=", LATE]
    ]  # fmt: skip


def test_a_price_list_keeps_a_tier_where_its_price_changes_and_nothing_at_list_price() -> None:
    d = Decimal
    by_break = [(0.0, d("18.0000")), (5.0, d("18.0000")), (9.5, d("16.0000"))]
    prices = price_list_price(4, "Wholesale", "USD", by_break, d("20.0000"))
    assert prices == PriceListPrice(
        "4", "Wholesale", "USD", (PriceTier(0, d("18.0000")), PriceTier(10, d("16.0000")))
    )
    # The list price at every quantity, or no price at all: the list charges nothing else.
    assert (
        price_list_price(4, "W", "USD", [(0.0, d("20.0000")), (3.0, d("20.0000"))], d("20.0000"))
        is None
    )
    assert price_list_price(4, "W", "USD", [(0.0, None)], d("20.0000")) is None
    item = catalog_item(_product(), "USD", [prices], LATE + timedelta(days=1))
    assert item.updated_at == (LATE + timedelta(days=1)).replace(tzinfo=UTC)
    datum = catalog_datum(item, "erp:tryton")
    assert datum["price_lists"] == [{"price_list": "4", "name": "Wholesale", "currency": "USD",
        "tiers": [{"min_quantity": 0, "unit_price": d("18.0000")},
                  {"min_quantity": 10, "unit_price": d("16.0000")}]}]  # fmt: skip
    CODEC.encode("erpbridge.CatalogItem", datum, topic="erp.catalog")


def _definition(kind: str, selection: str | None = None) -> dict[str, Any]:
    return {"name": "a", "string": "A", "type_": kind, "selection": selection}


def test_attribute_values_are_written_out_as_text() -> None:
    sizes = _definition("multiselection", "s:Small\nm: Medium\nl:Large")
    assert attribute_value(["m", "l"], sizes) == "Medium, Large"
    assert attribute_value("xl", _definition("selection", "s:Small")) == "xl"  # not a choice now
    assert attribute_value(False, _definition("boolean")) == "false"
    assert attribute_value(Decimal("1E+1"), _definition("numeric")) == "10"
    assert attribute_value(0.5, _definition("float")) == "0.5"
    assert attribute_value(date(2026, 12, 7), _definition("date")) == "2026-12-07"
    assert attribute_value(datetime(2026, 12, 7, 9, 30), _definition("datetime")) == (
        "2026-12-07T09:30:00"
    )
    assert attribute_value(None, _definition("char")) is None
    assert attribute_value([], sizes) is None


def test_a_products_attributes_are_labelled_and_those_without_a_definition_left_out() -> None:
    definitions = {
        "colour": {"name": "colour", "string": "Colour", "type_": "char", "selection": None},
        "size": {"name": "size", "string": "", "type_": "integer", "selection": None},
    }
    row = _product(attributes={"size": 42, "colour": "Navy", "gone": "x", "empty": None})
    item = catalog_item(row, "USD", attributes=definitions)
    assert item.attributes == (
        ProductAttribute("colour", "Colour", "Navy"),
        ProductAttribute("size", "size", "42"),
    )
    datum = catalog_datum(item, "erp:tryton")
    assert datum["attributes"] == [
        {"name": "colour", "label": "Colour", "value": "Navy"},
        {"name": "size", "label": "size", "value": "42"},
    ]
    assert CODEC.decode(CODEC.encode("erpbridge.CatalogItem", datum, topic="t")).datum == datum
