"""WooCommerce through its REST API v3: stock levels, shipments as customer notes, products
and customers.

Stock: a product found by SKU (`GET /products?sku=`), its `stock_quantity` set with stock
management on, up to 100 products per `POST /products/batch` (WooCommerce's documented
batch limit).

WooCommerce has one stock location per product (the route maps it as "default") and no
compare-and-set: the level is set as is. Products are found by their SKU once and
remembered; a SKU WooCommerce does not sell is asked again after a while, since a shop adds
products. WooCommerce's list by SKU finds variations too: a variation's level goes to its
parent's `POST /products/<parent>/variations/batch`.

Products (push_catalog): WooCommerce prices in the shop's one currency (the route's
`currency`). A product the ERP sells is created as a simple product (its SKU, stock managed,
published) when no product has its SKU, or updated where its name, description, regular
price, status (publish) or attributes differ, both through `POST /products/batch`; one the
ERP no longer sells is set to draft (unsold, kept). The ERP's attributes are the product's
list of attributes, replaced whole (WooCommerce has one list per product): each a custom
attribute named by its label with its value as the one option, shown on the product page.
The SKUs of one ERP product (`group`) are variations of one variable product, its SKU the
group's handle (`erpbridge-group-<id>`; a second sink making it meanwhile is refused the
duplicate SKU and finds it at the retry), with the one attribute `Variant` whose options are
its variations' values, set from the variations as they are after each change so that no
sink's write loses another's; a variation has its price, stock, option value and the
ERP's attributes as JSON in its meta data `erpbridge_attributes`; one the ERP no longer sells
is private (not sold), the product still sold with the others. A variation of a variable
product of the merchant's own (its SKU not a group's handle) gets only its price and status.

Customers (push_customers): the account is looked for among those of the customer's email,
then of its name (`GET /customers?email=`, `?search=`), and taken where its meta data holds
the ERP's customer id; an account of the email with no such id is the customer's own (it
registered) and is marked with it; one marked with another customer's id is refused, since
WooCommerce keeps one account per email. None: created (`POST /customers`, WooCommerce
making its username). Its email, name (as first name), and billing and shipping address
(the ERP's first address; the phone on billing) are updated where they differ (`PUT
/customers/<id>`).

Shipments: WooCommerce has no fulfilment or tracking object of its own (tracking is a paid
extension's), so a shipment becomes a customer note on the order (`POST
/orders/<id>/notes` with `customer_note`, which WooCommerce e-mails to the customer and
shows on the order) naming the goods, the carrier and the tracking number, and ending with
the fulfilment's marker. The order's customer notes are read first: a note with the marker
means an earlier request made it, whose answer was lost.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import httpx

from connectors.storefront.adapter import (
    Outcome,
    Shipment,
    ShipmentOutcome,
    ShipmentStatus,
    SkuIds,
    Status,
    StorefrontRefused,
    StorefrontUnavailable,
    Synced,
    SyncStatus,
    request,
)
from connectors.storefront.customers import MARK as CUSTOMER_MARK
from connectors.storefront.customers import Customer, account_of, marked_in
from connectors.storefront.levels import StockLevel
from connectors.storefront.products import VARIANT_OPTION, Product, group_handle
from streams.domain.money import minor_unit

BATCH_LIMIT = 100
ATTRIBUTES = "erpbridge_attributes"
"""The meta data key of a variation holding the ERP's attributes: {name: {label, value}} as
JSON (WooCommerce's meta values of variations are text)."""


class WooCommerceStock:
    provider = "woocommerce"

    def __init__(
        self,
        client: httpx.Client,
        site_url: str,
        token: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        key, _, secret = token.partition(":")
        self._client = client
        self._api = f"{site_url.rstrip('/')}/wp-json/wc/v3"
        self._auth = (key, secret)
        self._products = SkuIds(self._product_id, clock)

    def set_levels(
        self, levels: Sequence[StockLevel], previous: Mapping[str, int]
    ) -> list[Outcome]:
        ids = {level.sku: self._products.get(level.sku) for level in levels}
        outcomes: dict[int, Outcome] = {}
        # A product's own levels go to the products' batch, a variation's to its parent's.
        by_parent: dict[int | None, list[tuple[int, StockLevel, int]]] = {}
        for i, level in enumerate(levels):
            found = ids[level.sku]
            if found is None:
                outcomes[i] = Outcome(level, Status.UNKNOWN_SKU)
            else:
                by_parent.setdefault(found[0], []).append((i, level, found[1]))
        for parent, known in sorted(by_parent.items(), key=lambda k: k[0] or 0):
            for start in range(0, len(known), BATCH_LIMIT):
                chunk = known[start : start + BATCH_LIMIT]
                answered = self._batch(parent, [
                    {"id": item, "manage_stock": True, "stock_quantity": level.quantity}
                    for _, level, item in chunk
                ])  # fmt: skip
                self._outcomes([(i, level) for i, level, _ in chunk], answered, outcomes)
        return [outcomes[i] for i in range(len(levels))]

    @staticmethod
    def _outcomes(
        chunk: list[tuple[int, StockLevel]],
        answered: list[dict[str, Any]],
        outcomes: dict[int, Outcome],
    ) -> None:
        for (i, level), item in zip(chunk, answered, strict=True):
            error = item.get("error")
            outcomes[i] = (
                Outcome(
                    level,
                    Status.FAILED,
                    f"{error['code']}: {error['message']}",
                    # A 5xx of one item (a database hiccup) may pass next time.
                    permanent=int((error.get("data") or {}).get("status", 400)) < 500,
                )
                if error
                else Outcome(level, Status.SET)
            )

    def _product_id(self, sku: str) -> tuple[int | None, int] | None:
        """The product of the SKU: (None, its id), or a variation's (its parent's, its id)."""
        found = self._product(sku)
        if found is None:
            return None
        return (int(found["parent_id"]) if _variation(found) else None), int(found["id"])

    def _product(self, sku: str) -> dict[str, Any] | None:
        """The product or variation of the SKU (WooCommerce's list by SKU holds both)."""
        found = self._call("GET", "/products", params={"sku": sku})
        matching = [p for p in found if p.get("sku") == sku]
        return dict(matching[0]) if matching else None

    def set_product(self, product: Product) -> Synced[Product]:
        found = self._product(product.sku)
        if found is None and not product.active:
            return Synced(product, SyncStatus.UNCHANGED)
        wanted: dict[str, Any] = {"status": "publish" if product.active else "draft"}
        if product.active:
            if len(product.prices) != 1:
                raise StorefrontRefused(
                    f"{product.sku} has no list price in the route's currency in the ERP"
                )
            ((currency, amount),) = product.prices
            places = Decimal(1).scaleb(-minor_unit(currency))
            wanted |= {
                "name": product.name,
                "description": product.description or "",
                "regular_price": str(amount.quantize(places)),
            }
            wanted["attributes"] = [
                {"name": _cleaned(a.label), "options": _options(a.value), "visible": True}
                for a in product.attributes
                if _options(a.value)
            ]
        if found is not None and _variation(found):
            return self._set_variation(product, found, wanted)
        if found is None:
            if product.group is not None and product.active:
                return self._add_variation(product, wanted)
            item = {**wanted, "type": "simple", "sku": product.sku, "manage_stock": True}
            made = self._one("create", item)
            return Synced(product, SyncStatus.CREATED, str(made["id"]))
        changes = {k: v for k, v in wanted.items() if k != "attributes" and found.get(k) != v}
        if "attributes" in wanted and _attributes(found.get("attributes")) != _attributes(
            wanted["attributes"]
        ):
            changes["attributes"] = wanted["attributes"]
        if changes:
            self._one("update", {"id": found["id"], **changes})
        status = SyncStatus.UPDATED if changes else SyncStatus.UNCHANGED
        return Synced(product, status, str(found["id"]))

    def _add_variation(self, product: Product, wanted: Mapping[str, Any]) -> Synced[Product]:
        """The SKU made a variation of its group's variable product (its SKU the group's
        handle), made with it when there is none."""
        assert product.group is not None
        handle = group_handle(product.group.id)
        parent = self._product(handle)
        if parent is None:
            try:
                parent = self._one("create", {
                    "type": "variable", "sku": handle, "name": product.group.name,
                    "description": wanted["description"], "status": "publish",
                    "attributes": [_option_of([])],
                })  # fmt: skip
            except StorefrontRefused as refused:
                if "product_invalid_sku" not in str(refused):
                    raise
                # Made meanwhile for a sibling by another sink of the route: found at the retry.
                raise StorefrontUnavailable(str(refused)) from refused
        item = {"sku": product.sku, "manage_stock": True, "status": "publish",
                **_variation_fields(product, wanted)}  # fmt: skip
        self._one("create", item, parent=int(parent["id"]))
        self._set_options(parent)
        return Synced(product, SyncStatus.CREATED, str(parent["id"]))

    def _set_variation(
        self, product: Product, found: Mapping[str, Any], wanted: Mapping[str, Any]
    ) -> Synced[Product]:
        """A variation made the ERP's SKU: one the ERP no longer sells is private (not sold),
        its product still sold with the others. A variation of a variable product of the
        merchant's own keeps its attributes: only its price and status are erpbridge's."""
        parent = self._call("GET", f"/products/{found['parent_id']}")
        ours = str(parent.get("sku") or "").startswith(group_handle(""))
        fields: dict[str, Any] = {"status": "publish" if product.active else "private"}
        if product.active:
            fields |= (
                _variation_fields(product, wanted)
                if ours
                else {"regular_price": wanted["regular_price"]}
            )
        changes = {
            k: v for k, v in fields.items()
            if (_attributes_of(found) if k == "attributes" else _held(found, k)) != (
                _attributes_of(fields) if k == "attributes" else v
            )
        }  # fmt: skip
        if changes:
            self._one("update", {"id": found["id"], **changes}, parent=int(parent["id"]))
        if ours and product.active and product.group is not None:
            # The product's name is the group's; its option's values repaired from its
            # variations whenever they lack this one's (a sink's write may have lost it).
            if parent.get("name") != product.group.name:
                self._one("update", {"id": parent["id"], "name": product.group.name})
                changes["name"] = product.group.name
            if _label(product) not in _values(parent):
                self._set_options(parent)
        status = SyncStatus.UPDATED if changes else SyncStatus.UNCHANGED
        return Synced(product, status, str(parent["id"]))

    def _set_options(self, parent: Mapping[str, Any]) -> None:
        """The variable product's option made its variations' values, as they are now, its
        other attributes (the merchant's) kept as they are."""
        labels: set[str] = set()
        page = 1
        while True:
            variations = self._call(
                "GET", f"/products/{parent['id']}/variations",
                params={"per_page": BATCH_LIMIT, "page": page},
            )  # fmt: skip
            labels |= {a["option"] for v in variations for a in v.get("attributes") or []
                       if a.get("name") == VARIANT_OPTION}  # fmt: skip
            if len(variations) < BATCH_LIMIT:
                break
            page += 1
        wanted = _option_of(sorted(labels))
        if sorted(_values(parent)) == wanted["options"]:
            return
        others = [a for a in parent.get("attributes") or [] if a.get("name") != VARIANT_OPTION]
        self._one("update", {"id": parent["id"], "attributes": [*others, wanted]})

    def _one(
        self, operation: str, item: dict[str, Any], parent: int | None = None
    ) -> dict[str, Any]:
        """One product (or variation of `parent`) created or updated through the batch
        endpoint; its error raised."""
        path = "/products/batch" if parent is None else f"/products/{parent}/variations/batch"
        answer = self._call("POST", path, json={operation: [item]})
        (done,) = answer.get(operation, [None])
        if not isinstance(done, dict):
            raise StorefrontUnavailable(f"WooCommerce answered no {operation} of {item.get('sku')}")
        error = done.get("error")
        if error:
            said = f"{error['code']}: {error['message']}"
            if int((error.get("data") or {}).get("status", 400)) >= 500:
                raise StorefrontUnavailable(said)
            raise StorefrontRefused(said)
        return done

    def set_customer(self, customer: Customer) -> Synced[Customer]:
        wanted = _account(customer)
        account = self._account(customer)
        if account is None:
            body = {**wanted, "meta_data": [{"key": CUSTOMER_MARK, "value": customer.customer_id}]}
            made = self._call("POST", "/customers", json=body)
            return Synced(customer, SyncStatus.CREATED, str(made["id"]))
        changes = {
            k: v
            for k, v in wanted.items()
            if (account.get(k) if not isinstance(v, dict) else _shown(account.get(k), v)) != v
        }
        if _mark_of(account) != customer.customer_id:
            changes["meta_data"] = [{"key": CUSTOMER_MARK, "value": customer.customer_id}]
        if changes:
            self._call("PUT", f"/customers/{account['id']}", json=changes)
        status = SyncStatus.UPDATED if changes else SyncStatus.UNCHANGED
        return Synced(customer, status, str(account["id"]))

    def _account(self, customer: Customer) -> dict[str, Any] | None:
        """The customer's account: marked with its id (by email, then by name), else the
        unmarked account of its email."""
        # WooCommerce lists only the `customer` role unless told otherwise.
        anyone = {"role": "all", "per_page": 100}
        by_email = self._call("GET", "/customers", params={**anyone, "email": customer.email})
        by_name = self._call("GET", "/customers", params={**anyone, "search": customer.name})
        account, other = account_of(customer.customer_id, by_email, by_name, _mark_of)
        if other is not None:
            raise StorefrontRefused(
                f"WooCommerce's account of {customer.email} belongs to the ERP's customer {other}"
            )
        return None if account is None else dict(account)

    def record_shipment(self, shipment: Shipment) -> ShipmentOutcome:
        if not shipment.order_id.isdigit():
            raise StorefrontRefused(f"WooCommerce order ids are numbers, not {shipment.order_id!r}")
        notes = f"/orders/{shipment.order_id}/notes"
        for note in self._call("GET", notes, params={"type": "customer"}):
            if shipment.marker in str(note.get("note")):
                return ShipmentOutcome(shipment, ShipmentStatus.ALREADY_THERE, str(note["id"]))
        made = self._call("POST", notes, json={"note": note_text(shipment), "customer_note": True})
        return ShipmentOutcome(shipment, ShipmentStatus.CREATED, str(made["id"]))

    def _batch(self, parent: int | None, updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        path = "/products/batch" if parent is None else f"/products/{parent}/variations/batch"
        answer = self._call("POST", path, json={"update": updates})
        answered: list[dict[str, Any]] = answer.get("update", [])
        if len(answered) != len(updates):
            raise StorefrontUnavailable(
                f"WooCommerce answered {len(answered)} of {len(updates)} updates"
            )
        return answered

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return request(self._client, method, self._api + path, auth=self._auth, **kwargs)


def note_text(shipment: Shipment) -> str:
    goods = ", ".join(f"{quantity} x {sku}" for sku, quantity in shipment.lines)
    via = f" with {shipment.carrier}" if shipment.carrier else ""
    tracking = f", tracking number {shipment.tracking_number}" if shipment.tracking_number else ""
    return f"Shipped{via}: {goods}{tracking}. {shipment.marker}"


def _shown(shown: Any, wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of an address WooCommerce shows that erpbridge sets."""
    return {k: (shown or {}).get(k) for k in wanted}


def _account(customer: Customer) -> dict[str, Any]:
    """The account fields erpbridge keeps: WooCommerce's empty string stands for none."""
    address = customer.address
    place = {
        "first_name": (address.name if address else None) or customer.name,
        "address_1": (address.street if address else None) or "",
        "city": (address.city if address else None) or "",
        "state": (address.region if address else None) or "",
        "postcode": (address.postal_code if address else None) or "",
        "country": (address.country if address else None) or "",
    }
    return {
        "email": customer.email,
        "first_name": customer.name,
        "billing": {**place, "email": customer.email or "", "phone": customer.phone or ""},
        "shipping": place,
    }


def _mark_of(account: Mapping[str, Any]) -> str | None:
    return marked_in(account.get("meta_data") or [])


def _attributes(shown: Any) -> list[tuple[str, list[str], bool]]:
    """A product's attributes as compared: name, options and whether shown, in order."""
    return [(a["name"], list(a["options"]), bool(a.get("visible"))) for a in shown or []]


def _variation(found: Mapping[str, Any]) -> bool:
    return found.get("type") == "variation"


def _variation_fields(product: Product, wanted: Mapping[str, Any]) -> dict[str, Any]:
    """What a variation of the SKU shows: its price, its option value, the ERP's attributes
    in its meta data (a variation has no attribute list of its own)."""
    attributes = {a.name: {"label": a.label, "value": a.value} for a in product.attributes}
    return {
        "regular_price": wanted["regular_price"],
        "attributes": [{"name": VARIANT_OPTION, "option": _label(product)}],
        "meta_data": [{"key": ATTRIBUTES, "value": json.dumps(attributes, sort_keys=True)}],
    }


def _label(product: Product) -> str:
    # "|" separates a custom attribute's options in WooCommerce.
    return _cleaned(product.variant_label).replace("|", "/")


def _option_of(labels: list[str]) -> dict[str, Any]:
    """The variable product's one attribute its variations choose from."""
    return {"name": VARIANT_OPTION, "options": labels, "visible": True, "variation": True}


def _values(parent: Mapping[str, Any]) -> list[str]:
    """The values the variable product's option offers."""
    return [
        o for a in parent.get("attributes") or [] if a.get("name") == VARIANT_OPTION
        for o in a.get("options") or []
    ]  # fmt: skip


def _attributes_of(shown: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    return [(a.get("name"), a.get("option")) for a in shown.get("attributes") or []]


def _held(found: Mapping[str, Any], key: str) -> Any:
    """A variation's field as compared; its meta data by the keys erpbridge sets."""
    if key != "meta_data":
        return found.get(key)
    return [{"key": m["key"], "value": m["value"]} for m in found.get("meta_data") or []
            if m.get("key") == ATTRIBUTES]  # fmt: skip


def _cleaned(text: str) -> str:
    """Text as WooCommerce keeps it (wc_clean): tags stripped, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]*>", "", text).split())


def _options(value: str) -> list[str]:
    """A value as a custom attribute's options read back: WooCommerce keeps them joined by
    " | " and splits them on "|", so a value holding one is several options."""
    return [o.strip() for o in _cleaned(value).split("|") if o.strip()]
