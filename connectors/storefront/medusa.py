"""Medusa 2 through its Admin API, as a secret API key (HTTP Basic, the key as user, as
Medusa requires of secret keys): stock levels, shipments, products and customers.

- **Stock**: a SKU's inventory item is found by `GET /admin/inventory-items?sku=` once and
  remembered (a SKU Medusa does not sell is asked again after a while); its level at the
  route's stock location (`warehouses`: Medusa's stock location ids) is set as its
  `stocked_quantity` with `POST /admin/inventory-items/<item>/location-levels/<location>`,
  one call per level (a refused one fails alone). Medusa sells that less its own open
  orders' reservations, and those orders are already out of erpbridge's available (`connector
  medusa-source` brings them in), so the level set is the available plus Medusa's
  reservations at the location, read just before: Medusa then sells what erpbridge says is
  available, no less. An order erpbridge has not read yet (a poll behind at most) still
  counts in that available until the next level. Medusa has no compare-and-set.
- **Products** (push_catalog): the variant of the SKU is found with
  `GET /admin/product-variants?q=`. A product the ERP sells is created when there is none
  (one variant, its SKU, Medusa managing its stock, in the store's default sales channel
  and shipping profile, published), or updated where its title, description or status
  (published) differ, and its variant's prices where they differ: Medusa's prices of a
  variant are replaced as a whole, so it sells at exactly the ERP's list prices (prices
  Medusa holds per region or price list go with them). A product the ERP no longer sells
  is set to draft (unsold, kept). The ERP's attributes are the product's metadata key
  `erpbridge_attributes` ({name: {label, value}}), replaced whole where it differs.
  The SKUs of one ERP product are variants of one product (handle `erpbridge-group-<id>`,
  found by `GET /admin/products?handle=`; a sibling's sink that made it meanwhile is told
  "already exists" and finds it at the retry), under the option `Variant` whose values are
  only ever added (`POST /admin/products/<id>/options/batch`), each variant holding the
  ERP's attributes in its own metadata. One the ERP no longer sells is unpriced and taken
  off erpbridge's price lists; the product is drafted with its last priced variant (marked
  `erpbridge_drafted` in its metadata, so that a sibling sold again publishes it, while one
  the merchant drafted stays so). A SKU
  that is one variant of a product of the merchant's own with others gets only its prices
  (none off sale), the product left as the merchant keeps it.
- **Customers** (push_customers): the account is looked for among those of the customer's
  email, then of its name (`GET /admin/customers?email=`, `?q=`; Medusa searches no
  metadata), and taken where its metadata holds the ERP's customer id; an account of the
  email with no such id is the customer's own (it registered) and is marked with it; an
  account of the email marked with another customer's id is refused, since Medusa keeps
  one account per email. None: created (`POST /admin/customers`). Its email, name (as
  first name) and phone are updated where they differ, and its address named "erpbridge"
  (created the first time, default for shipping and billing) holds the ERP's first
  address.
- **Shipments**: the order is read with its items and fulfillments. A fulfillment whose
  metadata names erpbridge's fulfilment was made by an earlier request (shipped now if that
  request stopped before the shipment). Otherwise the shipped SKUs are taken from the order's
  line items (by `variant_sku`, within what is left to fulfil), a fulfillment is created at
  the location the route maps to the warehouse, with erpbridge's fulfilment id in its
  metadata, and marked shipped with the tracking number as its label, the customer notified.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import httpx
import msgspec

from connectors.storefront.adapter import (
    Outcome,
    Shipment,
    ShipmentOutcome,
    ShipmentStatus,
    SkuIds,
    Status,
    StorefrontMissing,
    StorefrontRefused,
    StorefrontUnavailable,
    Synced,
    SyncStatus,
    request,
)
from connectors.storefront.customers import MARK as CUSTOMER_MARK
from connectors.storefront.customers import Customer, account_of
from connectors.storefront.levels import StockLevel
from connectors.storefront.products import (
    VARIANT_OPTION,
    Contract,
    Product,
    contract_title,
    group_handle,
)
from connectors.webhooks.medusa.mapping import MARK

_OPTION = "Default"
"""The one option of a product erpbridge creates (Medusa requires one)."""
_JSON = {"content-type": "application/json"}
_ENCODER = msgspec.json.Encoder(decimal_format="number")


def _json(body: Any) -> bytes:
    """JSON with money as exact numbers (Medusa's amounts are numbers in major units)."""
    return _ENCODER.encode(body)


_ORDER_FIELDS = "id,*items,*items.detail,*fulfillments,*fulfillments.labels"
_CUSTOMER_FIELDS = "id,email,first_name,phone,metadata,*addresses,*groups"
_CONTRACT_MARK = "erpbridge_price_list"
"""The key under which a customer group keeps the ERP's price list id (its metadata)."""
_DRAFTED = "erpbridge_drafted"
"""The group product's metadata key marking it drafted by erpbridge with its last priced
variant (empty: not)."""
ATTRIBUTES = "erpbridge_attributes"
"""The product metadata key holding the ERP's attributes: {name: {label, value}}."""
_ADDRESS_NAME = "erpbridge"
"""The name of the account's address that holds the ERP's address."""


class MedusaStorefront:
    provider = "medusa"

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        secret_key: str,
        locations: Mapping[str, str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`locations`: the route's warehouses by Medusa stock location id."""
        self._client = client
        self._url = url.rstrip("/")
        self._auth = (secret_key, "")
        self._locations = dict(locations)
        self._items = SkuIds(self._item, clock)
        self._defaults: tuple[str, str] | None = None
        """The store's default sales channel and shipping profile, for new products."""
        self._contracts: dict[str, tuple[str, str | None]] | None = None
        """The ERP's price list id -> its customer group and price list in Medusa."""
        self._orphans: dict[str, str] = {}
        """erpbridge's price lists by description, as last read (to find one left groupless)."""

    def set_levels(
        self, levels: Sequence[StockLevel], previous: Mapping[str, int]
    ) -> list[Outcome]:
        outcomes = []
        reserved: dict[str, dict[str, int]] = {}
        for level in levels:
            item = self._items.get(level.sku)
            if item is None:
                outcomes.append(Outcome(level, Status.UNKNOWN_SKU))
                continue
            if item not in reserved:
                reserved[item] = self._reserved(item)
            path = f"/admin/inventory-items/{item}/location-levels/{level.location}"
            stocked = level.quantity + reserved[item].get(level.location, 0)
            try:
                self._call("POST", path, json={"stocked_quantity": stocked})
            except StorefrontRefused as refused:
                outcomes.append(Outcome(level, Status.FAILED, str(refused), permanent=True))
                continue
            outcomes.append(Outcome(level, Status.SET))
        return outcomes

    def record_shipment(self, shipment: Shipment) -> ShipmentOutcome:
        order_path = f"/admin/orders/{shipment.order_id}"
        order = self._call("GET", order_path, params={"fields": _ORDER_FIELDS})["order"]
        for made in order["fulfillments"]:
            if (made.get("metadata") or {}).get(MARK) == shipment.fulfillment_id:
                if made.get("shipped_at") is None:
                    self._ship(shipment, order_path, made)
                    return ShipmentOutcome(shipment, ShipmentStatus.CREATED, made["id"])
                return ShipmentOutcome(shipment, ShipmentStatus.ALREADY_THERE, made["id"])
        items = _take(shipment.lines, order["items"])
        if not items:
            return ShipmentOutcome(shipment, ShipmentStatus.ALREADY_THERE)
        body: dict[str, Any] = {"items": items, "metadata": {MARK: shipment.fulfillment_id}}
        here = [loc for loc, wh in self._locations.items() if wh == shipment.warehouse_id]
        if here:
            body["location_id"] = here[0]
        fields = {"fields": "id,*fulfillments"}
        after = self._call("POST", f"{order_path}/fulfillments", json=body, params=fields)
        (made,) = [
            f
            for f in after["order"]["fulfillments"]
            if (f.get("metadata") or {}).get(MARK) == shipment.fulfillment_id
        ]
        self._ship(shipment, order_path, made, items)
        return ShipmentOutcome(shipment, ShipmentStatus.CREATED, made["id"])

    def _ship(
        self,
        shipment: Shipment,
        order_path: str,
        fulfillment: Mapping[str, Any],
        items: list[dict[str, Any]] | None = None,
    ) -> None:
        if items is None:
            items = [
                {"id": i["line_item_id"], "quantity": i["quantity"]}
                for i in fulfillment.get("items") or []
            ]
        labels = (
            [{"tracking_number": shipment.tracking_number, "tracking_url": "", "label_url": ""}]
            if shipment.tracking_number
            else []
        )
        self._call(
            "POST",
            f"{order_path}/fulfillments/{fulfillment['id']}/shipments",
            json={"items": items, "labels": labels, "metadata": {MARK: shipment.fulfillment_id}},
        )

    def set_product(self, product: Product) -> Synced[Product]:
        found = self._variant(product.sku)
        if found is None:
            if not product.active:
                return Synced(product, SyncStatus.UNCHANGED)
            if product.group is None:
                made = str(self._call("POST", "/admin/products", content=_json(self._new(product)),
                                      headers=_JSON, params={"fields": "id"})["product"]["id"])  # fmt: skip
            else:
                made = self._add_variant(product)
            variant = self._variant(product.sku)
            assert variant is not None, f"Medusa did not make the variant {product.sku}"
            self._set_contracts(variant, product.contracts)
            return Synced(product, SyncStatus.CREATED, made)
        shown = found["product"]
        grouped = str(shown.get("handle") or "").startswith(group_handle(""))
        path = f"/admin/products/{shown['id']}"
        if not grouped and self._variants(shown) > 1:
            return self._set_merchants_variant(product, found)
        changes: dict[str, Any] = {}
        # A variant of a group is taken off sale alone (unpriced), its product with its last
        # priced variant.
        if product.active or not grouped or not self._priced_others(shown, found):
            changes["status"] = "published" if product.active else "draft"
        if (
            grouped
            and product.active
            and (product.group is None or group_handle(product.group.id) != shown.get("handle"))
        ):
            raise StorefrontRefused(
                f"{product.sku} is a variant of Medusa's product {shown.get('handle')}, but the "
                f"ERP now groups it under {product.group.id if product.group else 'nothing'}: "
                "Medusa moves no variant between products; make it anew there by hand"
            )
        if product.active and grouped and product.group is not None:
            # The group's product shows the group: its description was the first SKU's, and
            # each SKU's own would overwrite the others'.
            changes["title"] = product.group.name
        elif product.active:
            changes |= {"title": product.name, "description": product.description}
        changes = {k: v for k, v in changes.items() if shown.get(k) != v}
        if grouped and "status" in changes:
            # Drafted with its last priced variant: marked, so that a sibling sold again
            # publishes it; a product the merchant drafted stays as they left it.
            changes["metadata"] = {_DRAFTED: "" if product.active else "erpbridge"}
        if product.active and not grouped and _held(shown) != _attributes(product):
            # Medusa merges metadata by key: this one key is erpbridge's, and replaced whole.
            changes["metadata"] = {ATTRIBUTES: _attributes(product)}
        if changes:
            self._call("POST", path, json=changes, params={"fields": "id"})
        edits: dict[str, Any] = {}
        if grouped:
            # Off sale, a variant gives its values up to the SKU that may replace it: Medusa
            # takes no two variants alike.
            label = product.variant_label if product.active else product.sku
            if product.active and found.get("title") != label:
                edits["title"] = label
            if {o.get("value") for o in found.get("options") or []} != {label}:
                self._option_value(shown, label)
                edits["options"] = {VARIANT_OPTION: label}
            if product.active and _held(found) != _attributes(product):
                edits["metadata"] = {ATTRIBUTES: _attributes(product)}
        prices = {(p["currency_code"].upper(), Decimal(str(p["amount"]))) for p in found["prices"]}
        wanted = set(product.prices) if product.active else set() if grouped else prices
        if prices != wanted:
            edits["prices"] = [{"currency_code": c.lower(), "amount": a} for c, a in sorted(wanted)]
        if edits:
            self._call("POST", f"{path}/variants/{found['id']}", content=_json(edits),
                       headers=_JSON, params={"fields": "id"})  # fmt: skip
        # Off sale alone, a variant of a group is off its price lists too.
        contracted = (product.active or grouped) and self._set_contracts(
            found, product.contracts if product.active else ()
        )
        updated = changes or edits or contracted
        return Synced(
            product, SyncStatus.UPDATED if updated else SyncStatus.UNCHANGED, str(shown["id"])
        )

    def _set_merchants_variant(self, product: Product, found: Mapping[str, Any]) -> Synced[Product]:
        """A variant of a product of the merchant's own with other variants: only its prices
        are erpbridge's, off sale none (the product and the others are the merchant's)."""
        shown = found["product"]
        prices = {(p["currency_code"].upper(), Decimal(str(p["amount"]))) for p in found["prices"]}
        wanted = set(product.prices) if product.active else set()
        changed = prices != wanted
        if changed:
            body = {
                "prices": [{"currency_code": c.lower(), "amount": a} for c, a in sorted(wanted)]
            }
            self._call("POST", f"/admin/products/{shown['id']}/variants/{found['id']}",
                       content=_json(body), headers=_JSON, params={"fields": "id"})  # fmt: skip
        contracted = self._set_contracts(found, product.contracts if product.active else ())
        status = SyncStatus.UPDATED if changed or contracted else SyncStatus.UNCHANGED
        return Synced(product, status, str(shown["id"]))

    def _variants(self, shown: Mapping[str, Any]) -> int:
        """How many variants the product has."""
        read = self._call(
            "GET", f"/admin/products/{shown['id']}", params={"fields": "id,variants.id"}
        )
        return len(read["product"]["variants"])

    def _priced_others(self, shown: Mapping[str, Any], found: Mapping[str, Any]) -> bool:
        """Whether the product has a priced variant other than `found`."""
        fields = {"fields": "id,variants.id,*variants.prices"}
        variants = self._call("GET", f"/admin/products/{shown['id']}", params=fields)
        return any(
            v["id"] != found["id"] and v.get("prices") for v in variants["product"]["variants"]
        )

    def _add_variant(self, product: Product) -> str:
        """The SKU made a variant of its group's product, made with it when there is none;
        the product's id."""
        assert product.group is not None
        handle = group_handle(product.group.id)
        fields = {"fields": "id,handle,status,metadata,*options,options.values.value",
                  "handle": handle}  # fmt: skip
        (shown,) = self._call("GET", "/admin/products", params=fields)["products"][:1] or [None]
        variant = self._new_variant(product, VARIANT_OPTION, product.variant_label) | {
            "metadata": {ATTRIBUTES: _attributes(product)}
        }
        if shown is None:
            body = self._new(product) | {
                "title": product.group.name,
                "handle": handle,
                "metadata": {},
                "options": [{"title": VARIANT_OPTION, "values": [product.variant_label]}],
                "variants": [variant],
            }
            try:
                made = self._call("POST", "/admin/products", content=_json(body), headers=_JSON,
                                  params={"fields": "id"})["product"]  # fmt: skip
            except StorefrontRefused as refused:
                if f"handle: {handle}, already exists" not in str(refused):
                    raise
                # Made meanwhile for a sibling by another sink of the route: added at the retry.
                raise StorefrontUnavailable(str(refused)) from refused
            return str(made["id"])
        self._option_value(shown, product.variant_label)
        self._call("POST", f"/admin/products/{shown['id']}/variants", content=_json(variant),
                   headers=_JSON, params={"fields": "id"})  # fmt: skip
        if shown.get("status") != "published" and (shown.get("metadata") or {}).get(_DRAFTED):
            body = {"status": "published", "metadata": {_DRAFTED: ""}}
            self._call("POST", f"/admin/products/{shown['id']}", json=body,
                       params={"fields": "id"})  # fmt: skip
        return str(shown["id"])

    def _option_value(self, shown: Mapping[str, Any], label: str) -> None:
        """`label` made a value of the group product's option (values are only added, so
        sinks adding siblings' at once lose none)."""
        if "options" not in shown or any("values" not in o for o in shown["options"]):
            path = f"/admin/products/{shown['id']}"
            shown = self._call("GET", path, params={"fields": "id,*options,options.values.value"})[
                "product"
            ]
        (option,) = [o for o in shown["options"] if o.get("title") == VARIANT_OPTION][:1] or [None]
        if option is None:
            raise StorefrontRefused(
                f"Medusa's product {shown['id']} has no option {VARIANT_OPTION!r} for its variants"
            )
        if label in {v.get("value") for v in option["values"]}:
            return
        body = {"update": [{"product_option_id": option["id"], "add": [{"value": label}]}]}
        self._call("POST", f"/admin/products/{shown['id']}/options/batch", json=body,
                   params={"fields": "id"})  # fmt: skip

    def _set_contracts(self, variant: Mapping[str, Any], contracts: Sequence[Contract]) -> bool:
        """The variant's prices in each price list erpbridge keeps made the ERP's (none in
        those of price lists that no longer price it); whether any changed. Medusa applies
        an override price list to the customers of its customer group, by cart quantity."""
        wanted = {contract.price_list: contract for contract in contracts}
        changed = False
        for erp_id in sorted(set(wanted) | set(self._known_contracts())):
            contract = wanted.get(erp_id)
            if contract is None and self._known_contracts()[erp_id][1] is None:
                continue  # a group without a price list prices nothing
            _, price_list = self._contract(erp_id, contract.name if contract else None)
            # A price names its variant only when asked through its price set.
            fields = {"fields": "id,*prices,prices.price_set.variant.id"}
            shown = self._on_known("GET", f"/admin/price-lists/{price_list}", params=fields)
            old = [p for p in shown["price_list"]["prices"] if p.get("variant_id") == variant["id"]]
            new = [] if contract is None else _tier_prices(contract, str(variant["id"]))
            if {_price_key(p) for p in old} != {_price_key(p) for p in new}:
                body = {"create": new, "delete": [p["id"] for p in old]}
                self._on_known("POST", f"/admin/price-lists/{price_list}/prices/batch",
                               content=_json(body), headers=_JSON)  # fmt: skip
                changed = True
        return changed

    def _on_known(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call naming a customer group or price list of the sink's list of erpbridge's:
        one the merchant deleted since makes the list read again at the retry."""
        try:
            return self._call(method, path, **kwargs)
        except StorefrontMissing as missing:
            self._contracts = None
            raise StorefrontUnavailable(str(missing)) from missing

    def _known_contracts(self) -> dict[str, tuple[str, str | None]]:
        if self._contracts is None:
            groups = {
                str(group["metadata"][_CONTRACT_MARK]): str(group["id"])
                for group in self._all("/admin/customer-groups", "customer_groups", "id,metadata")
                if (group.get("metadata") or {}).get(_CONTRACT_MARK) is not None
            }
            lists = {
                str(row["description"]): str(row["id"])
                for row in self._all("/admin/price-lists", "price_lists", "id,description")
            }
            self._contracts = {
                erp_id: (group, lists.get(contract_title(erp_id)))
                for erp_id, group in groups.items()
            }
            # A price list whose group the merchant deleted: its group is made again.
            self._orphans = {
                description: price_list
                for description, price_list in lists.items()
                if description.startswith(contract_title(""))
            }
        return self._contracts

    def _contract(self, erp_id: str, name: str | None) -> tuple[str, str]:
        """The customer group and price list of the ERP's price list, each made when
        missing (a price list left without its group given the new one)."""
        known = self._known_contracts()
        if erp_id not in known or known[erp_id][1] is None:
            self._contracts = None  # made meanwhile by another sink of the route?
            known = self._known_contracts()
        group, price_list = known.get(erp_id, (None, None))
        title = name or f"ERP price list {erp_id}"
        if group is None:
            group = str(self._call("POST", "/admin/customer-groups", params={"fields": "id"}, json={
                "name": f"{title} (ERP price list {erp_id})",
                "metadata": {_CONTRACT_MARK: erp_id}})["customer_group"]["id"])  # fmt: skip
            price_list = self._orphans.get(contract_title(erp_id))
            if price_list is not None:
                self._call("POST", f"/admin/price-lists/{price_list}", params={"fields": "id"},
                           json={"rules": {"customer.groups.id": [group]}})  # fmt: skip
        if price_list is None:
            price_list = str(self._call("POST", "/admin/price-lists", params={"fields": "id"}, json={
                "title": title, "description": contract_title(erp_id),
                "type": "override", "status": "active",
                "rules": {"customer.groups.id": [group]}})["price_list"]["id"])  # fmt: skip
        known[erp_id] = (group, price_list)
        return group, price_list

    def _variant(self, sku: str) -> dict[str, Any] | None:
        fields = (
            "id,sku,title,metadata,*prices,options.value,product.id,product.handle,"
            "product.title,product.description,product.status,product.metadata"
        )
        found = self._call(
            "GET", "/admin/product-variants", params={"q": sku, "fields": fields, "limit": 100}
        )
        exact = [v for v in found["variants"] if v.get("sku") == sku]
        return dict(exact[0]) if exact else None

    def _new(self, product: Product) -> dict[str, Any]:
        if self._defaults is None:
            (store,) = self._call(
                "GET", "/admin/stores", params={"fields": "id,default_sales_channel_id"}
            )["stores"]
            profiles = self._call("GET", "/admin/shipping-profiles", params={"fields": "id,type"})
            (profile,) = [p for p in profiles["shipping_profiles"] if p["type"] == "default"][:1]
            self._defaults = (str(store["default_sales_channel_id"]), str(profile["id"]))
        channel, profile_id = self._defaults
        return {
            "title": product.name,
            "description": product.description,
            "status": "published",
            "metadata": {ATTRIBUTES: _attributes(product)},
            "shipping_profile_id": profile_id,
            "sales_channels": [{"id": channel}],
            "options": [{"title": _OPTION, "values": [_OPTION]}],
            "variants": [self._new_variant(product, _OPTION, _OPTION) | {"title": product.name}],
        }

    @staticmethod
    def _new_variant(product: Product, option: str, value: str) -> dict[str, Any]:
        return {
            "title": value,
            "sku": product.sku,
            "manage_inventory": True,
            "options": {option: value},
            "prices": [{"currency_code": c.lower(), "amount": a} for c, a in product.prices],
        }

    def set_customer(self, customer: Customer) -> Synced[Customer]:
        fields = {"fields": _CUSTOMER_FIELDS}
        account = self._account(customer)
        wanted = {"email": customer.email, "first_name": customer.name, "phone": customer.phone}
        if account is None:
            body = {**wanted, "metadata": {CUSTOMER_MARK: customer.customer_id}}
            account = self._call("POST", "/admin/customers", json=body, params=fields)["customer"]
            status = SyncStatus.CREATED
        else:
            changes: dict[str, Any] = {k: v for k, v in wanted.items() if account.get(k) != v}
            if _mark_of(account) != customer.customer_id:
                metadata = {**(account.get("metadata") or {}), CUSTOMER_MARK: customer.customer_id}
                changes["metadata"] = metadata
            if changes:
                path = f"/admin/customers/{account['id']}"
                account = self._call("POST", path, json=changes, params=fields)["customer"]
            status = SyncStatus.UPDATED if changes else SyncStatus.UNCHANGED
        if customer.address is not None and self._address(account, customer):
            status = SyncStatus.UPDATED if status is SyncStatus.UNCHANGED else status
        if self._set_group(account, customer.price_list):
            status = SyncStatus.UPDATED if status is SyncStatus.UNCHANGED else status
        return Synced(customer, status, str(account["id"]))

    def _set_group(self, account: Mapping[str, Any], price_list: str | None) -> bool:
        """The account in the customer group of its price list and in no other of
        erpbridge's; whether that changed."""
        groups = {erp_id: group for erp_id, (group, _) in self._known_contracts().items()}
        if price_list is not None and price_list not in groups:
            groups[price_list] = self._contract(price_list, None)[0]
        wanted = {groups[price_list]} if price_list is not None else set()
        member = {str(g["id"]) for g in account.get("groups") or []} & set(groups.values())
        for group, change in [*((g, "add") for g in wanted - member),
                              *((g, "remove") for g in member - wanted)]:  # fmt: skip
            self._on_known("POST", f"/admin/customer-groups/{group}/customers",
                           json={change: [account["id"]]}, params={"fields": "id"})  # fmt: skip
        return wanted != member

    def _account(self, customer: Customer) -> dict[str, Any] | None:
        """The customer's account: marked with its id (by email, then by name), else the
        unmarked account of its email."""
        fields = {"fields": _CUSTOMER_FIELDS, "limit": 100}
        by_email = self._call("GET", "/admin/customers", params={**fields, "email": customer.email})
        by_name = self._call("GET", "/admin/customers", params={**fields, "q": customer.name})
        account, other = account_of(
            customer.customer_id, by_email["customers"], by_name["customers"], _mark_of
        )
        if other is not None:
            raise StorefrontRefused(
                f"Medusa's account of {customer.email} belongs to the ERP's customer {other}"
            )
        return None if account is None else dict(account)

    def _address(self, account: Mapping[str, Any], customer: Customer) -> bool:
        """The account's erpbridge address made the ERP's first; whether it changed."""
        address = customer.address
        assert address is not None
        wanted = {
            "first_name": address.name or customer.name,
            "address_1": address.street,
            "city": address.city,
            "province": address.region,
            "postal_code": address.postal_code,
            "country_code": address.country.lower() if address.country else None,
        }
        path = f"/admin/customers/{account['id']}/addresses"
        for shown in account.get("addresses") or []:
            if shown.get("address_name") == _ADDRESS_NAME:
                changes = {k: v for k, v in wanted.items() if shown.get(k) != v}
                if changes:
                    self._call(
                        "POST", f"{path}/{shown['id']}", json=changes, params={"fields": "id"}
                    )
                return bool(changes)
        body = {**wanted, "address_name": _ADDRESS_NAME, "is_default_shipping": True,
                "is_default_billing": True}  # fmt: skip
        self._call("POST", path, json=body, params={"fields": "id"})
        return True

    def selling(self) -> dict[tuple[str, str], int]:
        """What Medusa sells per (SKU, stock location): stocked less reserved."""
        return {
            (str(item["sku"]), str(level["location_id"])): int(level["available_quantity"])
            for item in self._all(
                "/admin/inventory-items", "inventory_items", "id,sku,*location_levels"
            )
            for level in item.get("location_levels") or []
        }

    def prices(self, currency: str) -> dict[str, Decimal]:
        """Each variant's price in `currency`, by SKU."""
        return {
            str(variant["sku"]): Decimal(str(price["amount"]))
            for variant in self._all("/admin/product-variants", "variants", "id,sku,*prices")
            for price in variant.get("prices") or []
            if price["currency_code"].upper() == currency and variant.get("sku")
        }

    def _all(self, path: str, name: str, fields: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            page = self._call("GET", path, params={"fields": fields, "limit": 100,
                                                   "offset": len(found)})  # fmt: skip
            found += page[name]
            if not page[name] or len(found) >= page["count"]:
                return found

    def _reserved(self, item: str) -> dict[str, int]:
        """The item's reserved quantity per stock location: Medusa's open orders."""
        found = self._call("GET", f"/admin/inventory-items/{item}/location-levels")
        return {
            str(level["location_id"]): int(level.get("reserved_quantity") or 0)
            for level in found["inventory_levels"]
        }

    def _item(self, sku: str) -> str | None:
        found = self._call("GET", "/admin/inventory-items", params={"sku": sku})
        matching = [i for i in found["inventory_items"] if i.get("sku") == sku]
        return str(matching[0]["id"]) if matching else None

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return request(self._client, method, self._url + path, auth=self._auth, **kwargs)


def _held(shown: Mapping[str, Any]) -> Any:
    """The ERP's attributes a product's or variant's metadata holds."""
    return (shown.get("metadata") or {}).get(ATTRIBUTES)


def _attributes(product: Product) -> dict[str, dict[str, str]]:
    """The ERP's attributes of the product as its metadata holds them, by name."""
    return {a.name: {"label": a.label, "value": a.value} for a in product.attributes}


def _tier_prices(contract: Contract, variant: str) -> list[dict[str, Any]]:
    """A contract's tiers as Medusa prices of the variant, each up to the next one's start."""
    prices = []
    starts = [start for start, _ in contract.tiers]
    for (start, amount), end in zip(contract.tiers, [*starts[1:], None], strict=True):
        price: dict[str, Any] = {
            "currency_code": contract.currency.lower(), "amount": amount, "variant_id": variant,
        }  # fmt: skip
        if start:
            price["min_quantity"] = start
        if end is not None:
            price["max_quantity"] = end - 1
        prices.append(price)
    return prices


def _price_key(price: Mapping[str, Any]) -> tuple[str, Decimal, int | None, int | None]:
    """What tells two prices apart (Medusa answers with numbers, null for no bound)."""
    bounds = (price.get("min_quantity"), price.get("max_quantity"))
    low, high = (None if b is None else int(b) for b in bounds)
    return (price["currency_code"].lower(), Decimal(str(price["amount"])), low, high)


def _mark_of(account: Mapping[str, Any]) -> str | None:
    mark = (account.get("metadata") or {}).get(CUSTOMER_MARK)
    return None if mark is None else str(mark)


def _take(lines: Sequence[tuple[str, int]], items: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The order's line items (id, quantity) that ship `lines`: only what is left to fulfil."""
    taken = []
    for sku, quantity in lines:
        for item in items:
            left = item["quantity"] - (item.get("detail") or {}).get("fulfilled_quantity", 0)
            n = min(quantity, left) if item.get("variant_sku") == sku else 0
            if n > 0:
                taken.append({"id": item["id"], "quantity": n})
                quantity -= n
    return taken
