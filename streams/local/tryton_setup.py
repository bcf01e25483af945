"""Master data for the local Tryton database; run by Tryton's own venv, never imported by the project.

Usage: python tryton_setup.py TRYTOND_CONF DATABASE_URI SPEC_JSON; the URI names the
database (postgresql://user@host:port/name): proteus takes a bare name for SQLite. The spec (written by
streams.local.tryton from the sample catalogue and config/finance.json) names the company
currency and the others with rates, accounts, fiscal years, warehouses with their opening
stock, products and customers. Only the standard library, proteus and trytond's shipped test
tools are available here.
"""

from __future__ import annotations

import datetime
import json
import sys
from decimal import Decimal
from typing import Any


def main(conf: str, database_uri: str, spec_path: str) -> None:
    with open(spec_path, encoding="utf-8") as handle:
        spec: dict[str, Any] = json.load(handle)

    from proteus import Model, config

    # Before any trytond module import: the backend is chosen when trytond.backend loads.
    config.set_trytond(database_uri, config_file=conf)

    from trytond.modules.account.tests.tools import create_chart, create_fiscalyear, get_accounts
    from trytond.modules.account_invoice.tests.tools import (
        create_payment_term,
        set_fiscalyear_invoice_sequences,
    )
    from trytond.modules.company.tests.tools import create_company, get_company

    Party = Model.get("party.party")
    company_party = Party(name=spec["company"])
    company_party.save()
    create_company(party=company_party, currency=spec["currency"])
    company = get_company()

    # The shipped English chart gives the account types and the properties (default
    # receivable/payable) that invoices need; the finance mapping's accounts join it.
    create_chart(company)
    standard = get_accounts(company)
    AccountType = Model.get("account.account.type")
    stock_types = AccountType.find([("stock", "=", True), ("company", "=", company.id)], limit=1)
    by_kind = {
        "receivable": standard["receivable"].type,
        "asset": standard["cash"].type,
        "stock": stock_types[0] if stock_types else standard["cash"].type,
        "liability": standard["tax"].type,
        "revenue": standard["revenue"].type,
        "expense": standard["expense"].type,
    }
    Account = Model.get("account.account")
    root = Account.find([("parent", "=", None), ("company", "=", company.id)], limit=1)[0]
    created: dict[str, Any] = {}
    for code, entry in spec["accounts"].items():
        account = Account(name=entry["name"], code=code, parent=root, type=by_kind[entry["kind"]])
        # The receivable keeps each customer's balance: erpbridge's journal names the customer
        # on its lines (the other accounts take no party).
        account.party_required = entry["kind"] == "receivable"
        account.save()
        created[code] = account

    for year in spec["fiscal_years"]:
        fiscalyear = set_fiscalyear_invoice_sequences(
            create_fiscalyear(company, (datetime.date(year, 1, 1), datetime.date(year, 12, 31)))
        )
        fiscalyear.click("create_period")

    # Sales in the catalogue's other currencies need them, with rates for stock valuation.
    Currency = Model.get("currency.currency")
    for code, rates in spec["currencies"].items():
        currency = Currency(name=code, code=code, symbol=code, rounding=Decimal("0.01"))
        for day, rate in rates.items():
            currency.rates.new(date=datetime.date.fromisoformat(day), rate=Decimal(rate))
        currency.save()

    payment_term = create_payment_term()
    payment_term.save()

    products: dict[str, Any] = {}
    Category = Model.get("product.category")
    category = Category(name="Merchandise", accounting=True)
    category.account_revenue = created[spec["revenue_account"]]
    category.account_expense = created[spec["expense_account"]]
    category.save()
    Uom = Model.get("product.uom")
    (unit,) = Uom.find([("name", "=", "Unit")], limit=1)
    Template = Model.get("product.template")
    for sku in spec["skus"]:
        template = Template(
            name=sku["name"],
            code=sku["code"],
            type="goods",
            default_uom=unit,
            salable=True,
            sale_uom=unit,
            list_price=Decimal(sku["list_price"]),
            account_category=category,
        )
        template.save()
        (product,) = template.products
        product.cost_price = Decimal(sku["cost_price"])
        product.save()
        products[sku["code"]] = product

    Location = Model.get("stock.location")
    Inventory = Model.get("stock.inventory")
    opening = datetime.date.fromisoformat(spec["opening_date"])
    (lost_found,) = Location.find([("type", "=", "lost_found")], limit=1)
    for warehouse in spec["warehouses"]:
        code = warehouse["code"]
        # A warehouse needs its own input, output and storage locations, made first.
        parts = [
            Location(name=f"{code} {label}", code=f"{code}-{label}", type="storage")
            for label in ("IN", "OUT", "STO")
        ]
        for location in parts:
            location.save()
        site = Location(name=warehouse["name"], code=code, type="warehouse")
        site.input_location, site.output_location, site.storage_location = parts
        # Inventories book their differences against it.
        site.lost_found_location = lost_found
        site.save()
        for location in parts:
            location.parent = site
            location.save()
        # The opening stock: a confirmed inventory of the storage location.
        inventory = Inventory(location=parts[2], date=opening)
        for sku in spec["skus"]:
            inventory.lines.new(product=products[sku["code"]], quantity=sku["target_stock"])
        inventory.save()
        inventory.click("confirm")

    for customer in spec["customers"]:
        party = Party(name=customer["name"], code=customer["code"])
        address = party.addresses[0] if party.addresses else party.addresses.new()
        address.street = customer["street"]
        address.city = customer["city"]
        address.postal_code = customer["postal_code"] or ""
        party.contact_mechanisms.new(type="email", value=customer["email"])
        party.customer_payment_term = payment_term
        party.save()


if __name__ == "__main__":
    main(*sys.argv[1:4])
