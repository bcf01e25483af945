"""Shopify through the Admin GraphQL API (2026-01): stock levels with `inventorySetQuantities`
of the `available` quantity, compare-and-set, idempotent, within Shopify's cost budget;
shipments with `fulfillmentCreate` and their tracking; and products with `productSet`.

- **Which item**: a SKU's inventory item comes from the route's `skus` (inventory item id ->
  SKU, as the stock webhooks need anyway), else from `inventoryItems(query: "sku:…")`,
  remembered; a SKU Shopify does not stock is asked again after a while.
- **Compare-and-set**: each quantity carries `changeFromQuantity`, the level the sink last
  set there, or the level Shopify reports now when the sink has set none. Shopify refuses
  the whole mutation when a level moved meanwhile (`CHANGE_FROM_QUANTITY_STALE`: a sale, a
  merchant's edit); the moved levels are read again and the mutation sent once more. A
  level that moves again in between fails with Shopify's words, to be set by the next
  availability record.
- **Refused levels**: Shopify applies none of a mutation with a userError. A level refused
  by its index (an item not stocked at the location, a quantity out of range) fails for
  good with Shopify's words; the rest are sent again without it.
- **Idempotent**: the mutation carries `@idempotent(key:)` (optional in 2026-01, required
  from 2026-04), the same key for the same levels, so a request whose answer was lost and
  is sent again sets nothing twice.
- **Cost**: Shopify answers a request over the budget with THROTTLED and its
  `extensions.cost.throttleStatus`; the adapter turns what is missing and the restore rate
  into the wait before a retry. The bucket is Shopify's, per app and shop, so replicas
  share it by construction.
- **Shipments**: the order's fulfillment orders are read, and the shipped SKUs taken from
  the open ones at the locations the route maps to the shipment's warehouse (any open one
  when none is mapped), one `fulfillmentCreate` per location with the carrier and tracking
  number, the customer notified; then the order is tagged `erpbridge-<fulfilment>`.
  `fulfillmentCreate` takes no idempotency key, so what Shopify holds decides: the tag, or
  nothing of the shipped SKUs left to fulfil, means an earlier request or the merchant did
  it already. Only a crash between the fulfillment and its tag, for an order with goods
  still to ship, can make it twice.
- **Products** (push_catalog): Shopify prices a variant in the shop's one currency (the
  route's `currency`). The variant of the SKU is found with `productVariants(query:
  "sku:…")`. A product the ERP sells and Shopify lacks is created by `productSet`: one
  option and one variant with the SKU, its price and tracked inventory, ACTIVE. One it has
  is set again by `productSet` on its id, with its variant's id, where its title,
  description, status or price differ. One the ERP no longer sells is ARCHIVED (kept,
  unsold). Shopify answers a refused product with userErrors, which refuse it for good.
  A SKU that is one variant of a product of the merchant's own with others gets only its
  price (`productVariantsBulkUpdate`) and contract prices, and is refused off sale.
  The SKUs of one ERP product (`group`) are variants of one product, its handle
  `erpbridge-group-<id>` (`productByIdentifier`), titled as the group, with the one option
  `Variant` valued by the SKU's attributes: made by `productSet` with the first of them
  (another sink that made it meanwhile gets HANDLE_NOT_UNIQUE and finds it at the retry),
  then each added by `productVariantsBulkCreate`; the product by `productUpdate` and the
  variant by `productVariantsBulkUpdate` (never `productSet`, which would delete the
  variants it is not given). A variant's attributes are its own metafields. A SKU the ERP
  no longer sells is deleted from its group's product (`productVariantsBulkDelete`), or
  archives the product when it is the last variant, marked with its SKU (metafield
  `erpbridge.archived_with`) so that a sibling sold again deletes that one and sells the
  product; a product the merchant archived is left so. The description is the first SKU's;
  a SKU the ERP moves to another group is refused.
- **Customers** (push_customers): the account carries the tag `erpbridge-customer-<id>`
  (Shopify searches tags; a customer's metafields only with a definition the merchant
  would have to make). It is looked for by that tag or by the customer's email
  (`customers(query:)`). An account of the email with no such tag is the customer's own
  (it registered) and is tagged; one tagged for another ERP customer is refused, since
  Shopify keeps one account per email. `customerSet` creates the account, upserting by
  email so that an account Shopify's search has not indexed yet is not made twice, or sets
  it again by id where its first name, email, phone or tag differ. The ERP's first address
  is the account's first (default): it replaces the one erpbridge set there before, and
  goes before the addresses of an account it adopts. Shopify replaces a list field of
  `customerSet` whole, so the account's other tags and addresses are sent with it.
- **Attributes**: the ERP's attributes of a product are its metafields of the `erpbridge`
  namespace (single-line text, keyed by the attribute's name, what Shopify's keys do not
  allow made `_`), given to `productSet` when the product is made; later set with
  `metafieldsSet` and deleted with `metafieldsDelete`, since productSet would delete every
  metafield it is not given, the merchant's and other apps' too. An empty value is none.
- **Contract prices** (the ERP's price lists): Shopify prices per buyer only for B2B
  companies, through a catalog whose price list applies to the company's locations. Each ERP
  price list is a company-location catalog titled `erpbridge price list <id>`, with a price
  list of that name in the route's currency (made when missing: the catalog first, so a
  crash leaves nothing found under another name; a price list of that name a deleted
  catalog left behind is given to the new catalog). A catalog or price list Shopify says is
  gone makes the sink read its catalogs again at the retry. A product's variant gets the contract's
  first tier as its fixed price there and the others as quantity price breaks, replaced
  whole by one `quantityPricingByVariantUpdate`, and loses them in erpbridge's price lists
  that no longer price it. An ERP customer with a price list gets a company (its
  `externalId` the ERP's customer id, one location), its account as the company's contact
  with the company's default role at the location, and the location in its price list's
  catalog and in no other of erpbridge's.
"""

from __future__ import annotations

import hashlib
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
    Status,
    StorefrontRefused,
    StorefrontUnavailable,
    Synced,
    SyncStatus,
    request,
)
from connectors.storefront.customers import (
    CUSTOMER_TAG,
    TAG_LIMIT,
    Customer,
    account_of,
    customer_tag,
)
from connectors.storefront.levels import StockLevel
from connectors.storefront.products import (
    VARIANT_OPTION,
    Contract,
    Product,
    contract_title,
    group_handle,
)
from connectors.webhooks.shopify.admin import API_VERSION
from streams.domain.money import minor_unit

BATCH_LIMIT = 250
"""Quantities per mutation: erpbridge's choice, Shopify's usual page size."""
LOOKUP_LIMIT = 50
"""SKUs per inventoryItems query."""
_UNKNOWN_FOR_SECONDS = 600.0
REASON = "correction"
"""Shopify's reason for a level set by the system that holds the truth."""
STALE = "CHANGE_FROM_QUANTITY_STALE"
_ROUNDS = 3
"""Mutations per batch: what went stale or was refused drops out, the rest goes again."""

SET_QUANTITIES = """
mutation SetStock($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { field message code }
  }
}
"""
LEVELS = """
query Levels($ids: [ID!]!, $location: ID!) {
  nodes(ids: $ids) {
    ... on InventoryItem {
      id
      inventoryLevel(locationId: $location) { quantities(names: ["available"]) { quantity } }
    }
  }
}
"""
ITEMS = """
query Items($first: Int!, $query: String!) {
  inventoryItems(first: $first, query: $query) { nodes { id sku } }
}
"""


ORDER_FULFILMENT = """
query OrderFulfilment($id: ID!) {
  order(id: $id) {
    tags
    fulfillmentOrders(first: 10) {
      nodes {
        id
        status
        assignedLocation { location { id } }
        lineItems(first: 50) { nodes { id sku remainingQuantity } }
      }
    }
  }
}
"""
CREATE_FULFILMENT = """
mutation Ship($fulfillment: FulfillmentInput!, $message: String) {
  fulfillmentCreate(fulfillment: $fulfillment, message: $message) {
    fulfillment { id }
    userErrors { field message }
  }
}
"""
TAG_ORDER = """
mutation Tag($id: ID!, $tags: [String!]!) {
  tagsAdd(id: $id, tags: $tags) { userErrors { field message } }
}
"""
_FULFILLABLE = ("OPEN", "IN_PROGRESS")


VARIANT = """
query Variant($query: String!) {
  productVariants(first: 10, query: $query) {
    nodes {
      id sku price
      selectedOptions { name value }
      metafields(first: 250, namespace: "erpbridge") { nodes { key value } }
      product {
        id handle title descriptionHtml status
        variantsCount { count }
        metafields(first: 250, namespace: "erpbridge") { nodes { key value } }
      }
    }
  }
}
"""
GROUP_PRODUCT = """
query GroupProduct($handle: String!) {
  productByIdentifier(identifier: {handle: $handle}) {
    id status
    variants(first: 250) { nodes { id sku } }
    archivedWith: metafield(namespace: "erpbridge", key: "archived_with") { value }
  }
}
"""
ADD_VARIANTS = """
mutation AddVariants($productId: ID!, $variants: [ProductVariantsBulkInput!]!) {
  productVariantsBulkCreate(productId: $productId, variants: $variants) {
    productVariants { id }
    userErrors { field message code }
  }
}
"""
UPDATE_VARIANTS = """
mutation UpdateVariants($productId: ID!, $variants: [ProductVariantsBulkInput!]!) {
  productVariantsBulkUpdate(productId: $productId, variants: $variants) {
    productVariants { id }
    userErrors { field message code }
  }
}
"""
DELETE_VARIANTS = """
mutation DeleteVariants($productId: ID!, $variantsIds: [ID!]!) {
  productVariantsBulkDelete(productId: $productId, variantsIds: $variantsIds) {
    product { id }
    userErrors { field message code }
  }
}
"""
UPDATE_PRODUCT = """
mutation UpdateProduct($product: ProductUpdateInput!) {
  productUpdate(product: $product) {
    product { id }
    userErrors { field message }
  }
}
"""
SET_PRODUCT = """
mutation SetProduct($identifier: ProductSetIdentifiers, $input: ProductSetInput!) {
  productSet(identifier: $identifier, input: $input, synchronous: true) {
    product { id variants(first: 1) { nodes { id } } }
    userErrors { field message code }
  }
}
"""
CUSTOMERS = """
query Customers($query: String!) {
  customers(first: 10, query: $query) {
    nodes {
      id firstName tags
      defaultEmailAddress { emailAddress }
      defaultPhoneNumber { phoneNumber }
      addressesV2(first: 50) { nodes { firstName address1 city provinceCode zip countryCodeV2 } }
    }
  }
}
"""
SET_CUSTOMER = """
mutation SetCustomer($identifier: CustomerSetIdentifiers, $input: CustomerSetInput!) {
  customerSet(identifier: $identifier, input: $input) {
    customer { id }
    userErrors { field message code }
  }
}
"""
CATALOGS = """
query Catalogs($after: String) {
  catalogs(first: 250, after: $after, type: COMPANY_LOCATION) {
    nodes { id title priceList { id } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
CREATE_CATALOG = """
mutation CreateCatalog($input: CatalogCreateInput!) {
  catalogCreate(input: $input) { catalog { id } userErrors { field message code } }
}
"""
CREATE_PRICE_LIST = """
mutation CreatePriceList($input: PriceListCreateInput!) {
  priceListCreate(input: $input) { priceList { id } userErrors { field message code } }
}
"""
PRICE_LISTS = """
query PriceLists($after: String) {
  priceLists(first: 250, after: $after) {
    nodes { id name currency }
    pageInfo { hasNextPage endCursor }
  }
}
"""
UPDATE_CATALOG = """
mutation UpdateCatalog($id: ID!, $input: CatalogUpdateInput!) {
  catalogUpdate(id: $id, input: $input) { catalog { id } userErrors { field message code } }
}
"""
VARIANT_PRICE = """
query VariantPrice($id: ID!, $query: String!) {
  priceList(id: $id) {
    prices(first: 1, query: $query, originType: FIXED) {
      nodes {
        price { amount currencyCode }
        quantityPriceBreaks(first: 50) { nodes { minimumQuantity price { amount } } }
      }
    }
  }
}
"""
SET_QUANTITY_PRICING = """
mutation SetPricing($priceListId: ID!, $input: QuantityPricingByVariantUpdateInput!) {
  quantityPricingByVariantUpdate(priceListId: $priceListId, input: $input) {
    productVariants { id }
    userErrors { field message code }
  }
}
"""
_GONE = ("CATALOG_NOT_FOUND", "PRICE_LIST_NOT_FOUND", "CATALOG_DOES_NOT_EXIST")
_MADE_MEANWHILE = ("HANDLE_NOT_UNIQUE",)
_ARCHIVED_WITH = "archived_with"
"""The group product's metafield naming the SKU erpbridge archived it with."""
"""What another sink of the route made meanwhile: found at the retry."""
"""userError codes of a catalog or price list that is no longer there."""
_COMPANY_FIELDS = """
      id
      defaultRole { id }
      contactRoles(first: 10) { nodes { id } }
      contacts(first: 50) {
        nodes { id customer { id } roleAssignments(first: 10) { nodes { companyLocation { id } } } }
      }
      locations(first: 1) { nodes { id catalogs(first: 50) { nodes { id title } } } }
"""
COMPANY = f"""
query Company($query: String!) {{
  companies(first: 1, query: $query) {{ nodes {{ {_COMPANY_FIELDS} }} }}
}}
"""
CREATE_COMPANY = f"""
mutation CreateCompany($input: CompanyCreateInput!) {{
  companyCreate(input: $input) {{
    company {{ {_COMPANY_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}
"""
ASSIGN_CONTACT = """
mutation AssignContact($companyId: ID!, $customerId: ID!) {
  companyAssignCustomerAsContact(companyId: $companyId, customerId: $customerId) {
    companyContact { id roleAssignments(first: 10) { nodes { companyLocation { id } } } }
    userErrors { field message code }
  }
}
"""
ASSIGN_ROLE = """
mutation AssignRole($contact: ID!, $role: ID!, $location: ID!) {
  companyContactAssignRole(
    companyContactId: $contact, companyContactRoleId: $role, companyLocationId: $location
  ) {
    companyContactRoleAssignment { id }
    userErrors { field message code }
  }
}
"""
SET_CATALOG_CONTEXT = """
mutation SetContext($id: ID!, $add: CatalogContextInput, $remove: CatalogContextInput) {
  catalogContextUpdate(catalogId: $id, contextsToAdd: $add, contextsToRemove: $remove) {
    catalog { id }
    userErrors { field message code }
  }
}
"""
SET_METAFIELDS = """
mutation SetMetafields($metafields: [MetafieldsSetInput!]!) {
  metafieldsSet(metafields: $metafields) {
    metafields { key }
    userErrors { field message code }
  }
}
"""
METAFIELDS_LIMIT = 25
"""Metafields per metafieldsSet, Shopify's limit."""
DELETE_METAFIELDS = """
mutation DeleteMetafields($metafields: [MetafieldIdentifierInput!]!) {
  metafieldsDelete(metafields: $metafields) {
    deletedMetafields { key }
    userErrors { field message }
  }
}
"""
ATTRIBUTES = "erpbridge"
"""The metafield namespace of the ERP's attributes of a product: erpbridge's alone."""
_OPTION = {"optionName": "Title", "name": "Default Title"}
"""The one option value of a product of one variant, as Shopify names it."""


def gid(kind: str, id: str) -> str:
    """A Shopify global id from the numeric id its webhooks use (or a global id as is)."""
    return id if id.startswith("gid://") else f"gid://shopify/{kind}/{id}"


def _quoted(value: str) -> str:
    """A value in Shopify's search syntax (quoted: it may hold spaces or colons)."""
    return "'{}'".format(value.replace("\\", "\\\\").replace("'", "\\'"))


def sku_query(skus: Sequence[str]) -> str:
    """Shopify's search syntax for any of `skus`."""
    return " OR ".join(f"sku:{_quoted(sku)}" for sku in skus)


def idempotency_key(quantities: Sequence[Mapping[str, Any]]) -> str:
    body = json.dumps(list(quantities), sort_keys=True).encode()
    return "erpbridge-" + hashlib.sha256(body).hexdigest()[:32]


class ShopifyStock:
    provider = "shopify"

    def __init__(
        self,
        client: httpx.Client,
        shop_url: str,
        token: str,
        items: Mapping[str, str],
        locations: Mapping[str, str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`items`: the route's inventory item ids by SKU; `locations`: its warehouses by
        location id."""
        self._client = client
        self._url = f"{shop_url.rstrip('/')}/admin/api/{API_VERSION}/graphql.json"
        self._token = token
        self._items = {sku: gid("InventoryItem", item) for sku, item in items.items()}
        self._locations = {gid("Location", loc): warehouse for loc, warehouse in locations.items()}
        self._unknown: dict[str, float] = {}
        self._reported: dict[str, int | None] = {}
        """Levels Shopify reported, by level key, until the sink has set them."""
        self._catalogs: dict[str, tuple[str, str | None]] | None = None
        """erpbridge's catalogs and their price lists by the ERP's price list, once read."""
        self._clock = clock

    def set_levels(
        self, levels: Sequence[StockLevel], previous: Mapping[str, int]
    ) -> list[Outcome]:
        self._find_items(sorted({level.sku for level in levels} - set(self._items)))
        outcomes: dict[int, Outcome] = {}
        known = []
        for i, level in enumerate(levels):
            if level.sku in self._items:
                known.append((i, level))
            else:
                outcomes[i] = Outcome(level, Status.UNKNOWN_SKU)
        for start in range(0, len(known), BATCH_LIMIT):
            chunk = known[start : start + BATCH_LIMIT]
            for (i, _), outcome in zip(
                chunk, self._set([lv for _, lv in chunk], previous), strict=True
            ):
                outcomes[i] = outcome
        return [outcomes[i] for i in range(len(levels))]

    def _set(self, levels: list[StockLevel], previous: Mapping[str, int]) -> list[Outcome]:
        # What Shopify reported is kept across attempts: a throttled batch tried again does
        # not pay for reading it again, and compare-and-set catches what went stale.
        self._reported.update(
            self._current([lv for lv in levels if lv.key not in {**previous, **self._reported}])
        )
        start_from: dict[str, int | None] = {**self._reported, **previous}
        refused: dict[str, str] = {}
        """Shopify's words per level it refused: the others go again without them."""
        pending = list(levels)
        errors: dict[int, dict[str, Any]] = {}
        for _ in range(_ROUNDS):
            errors = self._mutate(pending, start_from)
            if not errors or -1 in errors:
                break
            stale = [pending[i] for i, error in errors.items() if error["code"] == STALE]
            refused.update(
                {pending[i].key: _said(e) for i, e in errors.items() if e["code"] != STALE}
            )
            if stale:
                # Moved since the sink set them (a sale, an edit): again from where they are.
                self._reported.update(self._current(stale))
                start_from.update({level.key: self._reported[level.key] for level in stale})
            pending = [level for level in pending if level.key not in refused]
            if not pending:
                errors = {}
                break
        outcomes = {level.key: Outcome(level, Status.SET) for level in pending}
        if errors:
            # Shopify applies none of a refused mutation.
            whole = errors.get(-1)
            said = f"not set: {_said(whole)}" if whole else "not set: still moving after retries"
            outcomes = {
                level.key: Outcome(level, Status.FAILED, said, permanent=whole is not None)
                for level in pending
            }
        for level in levels:
            if level.key in refused:
                outcomes[level.key] = Outcome(
                    level, Status.FAILED, refused[level.key], permanent=True
                )
            elif outcomes[level.key].status is Status.SET:
                self._reported.pop(level.key, None)  # the sink's `previous` knows it now
        return [outcomes[level.key] for level in levels]

    def record_shipment(self, shipment: Shipment) -> ShipmentOutcome:
        order_id = gid("Order", shipment.order_id)
        order = self._call(ORDER_FULFILMENT, {"id": order_id})["order"]
        if order is None:
            raise StorefrontRefused(f"Shopify has no order {shipment.order_id}")
        tag = shipment_tag(shipment)
        if tag in order["tags"]:
            return ShipmentOutcome(shipment, ShipmentStatus.ALREADY_THERE)
        open_orders = [
            fo for fo in order["fulfillmentOrders"]["nodes"] if fo["status"] in _FULFILLABLE
        ]
        if shipment.warehouse_id in self._locations.values():
            open_orders_here = [
                fo for fo in open_orders if self._warehouse_of(fo) == shipment.warehouse_id
            ]
        else:
            open_orders_here = open_orders
        by_location = _take(shipment.lines, open_orders_here)
        if not by_location:
            wanted = {sku for sku, _ in shipment.lines}
            left = [
                item
                for fo in open_orders
                for item in fo["lineItems"]["nodes"]
                if item["sku"] in wanted and item["remainingQuantity"] > 0
            ]
            if left:
                raise StorefrontRefused(
                    f"Shopify holds the goods of fulfilment {shipment.fulfillment_id} at no "
                    f"location of warehouse {shipment.warehouse_id}"
                )
            return ShipmentOutcome(shipment, ShipmentStatus.ALREADY_THERE)
        made_ids = []
        for fulfillment_orders in by_location.values():
            made_ids.append(self._create(shipment, fulfillment_orders))
        tagged = self._call(TAG_ORDER, {"id": order_id, "tags": [tag]})["tagsAdd"]
        said = "; ".join(e["message"] for e in tagged["userErrors"]) or None
        return ShipmentOutcome(
            shipment, ShipmentStatus.CREATED, ",".join(made_ids),
            None if said is None else f"created, but the order's tag was refused: {said}",
        )  # fmt: skip

    def set_product(self, product: Product) -> Synced[Product]:
        nodes = self._call(VARIANT, {"query": sku_query([product.sku])})["productVariants"]
        (found,) = [v for v in nodes["nodes"] if v["sku"] == product.sku][:1] or [None]
        if found is None and not product.active:
            return Synced(product, SyncStatus.UNCHANGED)
        wanted: dict[str, Any] = {"status": "ACTIVE" if product.active else "ARCHIVED"}
        price = None
        if product.active:
            if len(product.prices) != 1:
                raise StorefrontRefused(
                    f"{product.sku} has no list price in the route's currency in the ERP"
                )
            ((currency, amount),) = product.prices
            price = str(amount.quantize(Decimal(1).scaleb(-minor_unit(currency))))
            wanted |= {"title": product.name, "descriptionHtml": product.description or ""}
        attributes = {metafield_key(a.name): a.value for a in product.attributes if a.value}
        if found is None:
            if product.group is not None:
                made, variant_id = self._add_variant(product, wanted, price, attributes)
            else:
                variant = {"optionValues": [_OPTION], "sku": product.sku, "price": price,
                           "inventoryItem": {"tracked": True}}  # fmt: skip
                options = [{"name": _OPTION["optionName"], "values": [{"name": _OPTION["name"]}]}]
                fields = {**wanted, "productOptions": options, "variants": [variant]}
                if attributes:
                    # A new product has no metafields that productSet's list could replace.
                    fields["metafields"] = [_metafield(k, v) for k, v in sorted(attributes.items())]
                made, variant_id = self._set_product(fields)
            self._set_contracts(variant_id, product.contracts)
            self._unknown.pop(product.sku, None)  # stocked now: its level need not wait
            return Synced(product, SyncStatus.CREATED, made)
        shown = found["product"]
        if str(shown.get("handle") or "").startswith(group_handle("")):
            return self._set_variant(product, found, wanted, price, attributes)
        if shown["variantsCount"]["count"] > 1:
            return self._set_merchants_variant(product, found, price)
        changes = {k: v for k, v in wanted.items() if shown.get(k) != v}
        repriced = price is not None and Decimal(found["price"]) != Decimal(price)
        if changes or repriced:
            variant = {"id": found["id"], "optionValues": [_OPTION], "sku": product.sku,
                       "price": price if price is not None else found["price"]}  # fmt: skip
            self._set_product({**wanted, "variants": [variant]}, shown["id"])
        described = product.active and self._set_attributes(shown, attributes)
        contracted = product.active and self._set_contracts(found["id"], product.contracts)
        updated = changes or repriced or described or contracted
        status = SyncStatus.UPDATED if updated else SyncStatus.UNCHANGED
        return Synced(product, status, str(shown["id"]))

    def _add_variant(
        self, product: Product, wanted: Mapping[str, Any], price: str | None,
        attributes: Mapping[str, str],
    ) -> tuple[str, str]:  # fmt: skip
        """The SKU made a variant of its group's product (made with it when there is none),
        its attributes as the variant's metafields; the product's id and the variant's."""
        assert product.group is not None
        handle = group_handle(product.group.id)
        option = [{"optionName": VARIANT_OPTION, "name": product.variant_label}]
        variant: dict[str, Any] = {"optionValues": option, "price": price}
        if attributes:
            variant["metafields"] = [_metafield(k, v) for k, v in sorted(attributes.items())]
        shown = self._call(GROUP_PRODUCT, {"handle": handle})["productByIdentifier"]
        if shown is None:
            values = [{"name": product.variant_label}]
            fields = {**wanted, "title": product.group.name, "handle": handle,
                      "productOptions": [{"name": VARIANT_OPTION, "values": values}],
                      "variants": [{**variant, "sku": product.sku,
                                    "inventoryItem": {"tracked": True}}]}  # fmt: skip
            # A sibling's sink that made it meanwhile makes this one HANDLE_NOT_UNIQUE: retried.
            return self._set_product(fields)
        variant["inventoryItem"] = {"sku": product.sku, "tracked": True}
        variables = {"productId": shown["id"], "variants": [variant]}
        made = self._mutated(ADD_VARIANTS, "productVariantsBulkCreate", variables)
        marked = (shown.get("archivedWith") or {}).get("value")
        if shown["status"] != wanted["status"] and marked is not None:
            # erpbridge archived it with its last variant, whose SKU the ERP no longer sells:
            # that one goes (sold again, it comes back) and the product is sold. One the
            # merchant archived stays as they left it.
            stale = [v for v in shown["variants"]["nodes"] if v["sku"] == marked]
            if stale:
                self._mutated(DELETE_VARIANTS, "productVariantsBulkDelete",
                              {"productId": shown["id"], "variantsIds": [v["id"] for v in stale]})  # fmt: skip
                self._items.pop(marked, None)
            self._archived_with(shown["id"], None)
            product_input = {"id": shown["id"], "status": wanted["status"]}
            self._mutated(UPDATE_PRODUCT, "productUpdate", {"product": product_input})
        return str(shown["id"]), str(made["productVariants"][0]["id"])

    def _set_variant(
        self, product: Product, found: Mapping[str, Any], wanted: Mapping[str, Any],
        price: str | None, attributes: Mapping[str, str],
    ) -> Synced[Product]:  # fmt: skip
        """A variant of a group's product made the ERP's SKU: the product's title is the
        group's; a SKU the ERP no longer sells is deleted from it, or archived with its
        product when it is the last."""
        shown = found["product"]
        if product.active and (
            product.group is None or group_handle(product.group.id) != shown["handle"]
        ):
            raise StorefrontRefused(
                f"{product.sku} is a variant of Shopify's product {shown['handle']}, but the "
                f"ERP now groups it under {product.group.id if product.group else 'nothing'}: "
                "Shopify moves no variant between products; make it anew there by hand"
            )
        if not product.active and shown["variantsCount"]["count"] > 1:
            variables = {"productId": shown["id"], "variantsIds": [found["id"]]}
            self._mutated(DELETE_VARIANTS, "productVariantsBulkDelete", variables)
            self._items.pop(product.sku, None)  # its inventory item went with it
            return Synced(product, SyncStatus.UPDATED, str(shown["id"]))
        # The group's product shows the group: its description was the first SKU's, and each
        # SKU's own would overwrite the others'.
        wanted = {k: v for k, v in wanted.items() if k != "descriptionHtml"}
        if product.active and product.group is not None:
            wanted["title"] = product.group.name
        changes = {k: v for k, v in wanted.items() if shown.get(k) != v}
        if changes:
            self._mutated(
                UPDATE_PRODUCT, "productUpdate", {"product": {"id": shown["id"], **changes}}
            )
            if "status" in changes:
                # Archived with its last variant: marked, so that a sibling sold again later
                # knows this one is off sale; sold again itself, the mark goes.
                self._archived_with(shown["id"], None if product.active else product.sku)
        edits: dict[str, Any] = {}
        if price is not None and Decimal(found["price"]) != Decimal(price):
            edits["price"] = price
        label = product.variant_label
        if product.active and [o["value"] for o in found["selectedOptions"]] != [label]:
            edits["optionValues"] = [{"optionName": VARIANT_OPTION, "name": label}]
        if edits:
            variables = {"productId": shown["id"], "variants": [{"id": found["id"], **edits}]}
            self._mutated(UPDATE_VARIANTS, "productVariantsBulkUpdate", variables)
        described = product.active and self._set_attributes(found, attributes)
        contracted = product.active and self._set_contracts(found["id"], product.contracts)
        updated = changes or edits or described or contracted
        status = SyncStatus.UPDATED if updated else SyncStatus.UNCHANGED
        return Synced(product, status, str(shown["id"]))

    def _set_merchants_variant(
        self, product: Product, found: Mapping[str, Any], price: str | None
    ) -> Synced[Product]:
        """A variant of a product of the merchant's own with other variants: only its price
        and contract prices are erpbridge's (productSet would delete the others). Off sale,
        it is refused: taking it out of the merchant's product is the merchant's call."""
        shown = found["product"]
        if not product.active:
            raise StorefrontRefused(
                f"the ERP no longer sells {product.sku}, a variant of the merchant's Shopify "
                f"product {shown['handle']}: take it off sale there by hand"
            )
        repriced = price is not None and Decimal(found["price"]) != Decimal(price)
        if repriced:
            variables = {
                "productId": shown["id"],
                "variants": [{"id": found["id"], "price": price}],
            }
            self._mutated(UPDATE_VARIANTS, "productVariantsBulkUpdate", variables)
        contracted = self._set_contracts(found["id"], product.contracts)
        status = SyncStatus.UPDATED if repriced or contracted else SyncStatus.UNCHANGED
        return Synced(product, status, str(shown["id"]))

    def _archived_with(self, product_id: str, sku: str | None) -> None:
        """The group product's mark of the SKU erpbridge archived it with (None: removed)."""
        if sku is None:
            mark = {"ownerId": product_id, "namespace": ATTRIBUTES, "key": _ARCHIVED_WITH}
            self._mutated(DELETE_METAFIELDS, "metafieldsDelete", {"metafields": [mark]})
        else:
            mark = {**_metafield(_ARCHIVED_WITH, sku), "ownerId": product_id}
            self._mutated(SET_METAFIELDS, "metafieldsSet", {"metafields": [mark]})

    def _set_attributes(self, product: Mapping[str, Any], wanted: Mapping[str, str]) -> bool:
        """The product's (or variant's) `erpbridge` metafields made `wanted` (key: value);
        whether any changed. Not through productSet, which would delete every metafield it
        is not given, the merchant's and other apps' too."""
        held = {m["key"]: m["value"] for m in product["metafields"]["nodes"]}
        changed = sorted(k for k, v in wanted.items() if held.get(k) != v)
        for start in range(0, len(changed), METAFIELDS_LIMIT):
            chunk = [
                {**_metafield(k, wanted[k]), "ownerId": product["id"]}
                for k in changed[start : start + METAFIELDS_LIMIT]
            ]
            self._mutated(SET_METAFIELDS, "metafieldsSet", {"metafields": chunk})
        gone = sorted(set(held) - set(wanted))
        if gone:
            identifiers = [
                {"ownerId": product["id"], "namespace": ATTRIBUTES, "key": k} for k in gone
            ]
            self._mutated(DELETE_METAFIELDS, "metafieldsDelete", {"metafields": identifiers})
        return bool(changed or gone)

    def _set_contracts(self, variant: str, contracts: Sequence[Contract]) -> bool:
        """The variant's fixed price and quantity price breaks in each of erpbridge's price
        lists made the ERP's (none in those that no longer price it); whether any changed."""
        wanted = {contract.price_list: contract for contract in contracts}
        changed = False
        for erp_id in sorted(set(wanted) | set(self._known_catalogs())):
            contract = wanted.get(erp_id)
            currency = contract.currency if contract else None
            _, price_list = self._catalog(erp_id, currency, make=contract is not None)
            if price_list is None:
                continue  # a catalog without a price list prices nothing
            query = f"variant_id:{_quoted(variant.rsplit('/', 1)[-1])}"
            answer = self._call(VARIANT_PRICE, {"id": price_list, "query": query})["priceList"]
            shown = (answer or {"prices": {"nodes": []}})["prices"]["nodes"]
            old = _shown_tiers(shown[0]) if shown else None
            new = _tiers(contract) if contract else None
            if old == new:
                continue
            self._mutate_pricing(price_list, variant, contract)
            changed = True
        return changed

    def _mutate_pricing(self, price_list: str, variant: str, contract: Contract | None) -> None:
        """The variant's quantity pricing in the price list replaced by the contract's (or
        removed): Shopify deletes before it adds, a fixed price added over one replaces it,
        and it applies all or nothing."""
        prices, breaks = [], []
        if contract is not None:
            for start, amount in contract.tiers:
                money = {"amount": str(_in_minor(amount, contract.currency)),
                         "currencyCode": contract.currency}  # fmt: skip
                if start <= 1:
                    prices = [{"variantId": variant, "price": money}]
                else:
                    breaks.append({"variantId": variant, "minimumQuantity": start, "price": money})
        pricing = {
            "pricesToAdd": prices,
            "pricesToDeleteByVariantId": [] if prices else [variant],
            "quantityPriceBreaksToAdd": breaks,
            "quantityPriceBreaksToDelete": [],
            "quantityPriceBreaksToDeleteByVariantId": [variant],
            "quantityRulesToAdd": [],
            "quantityRulesToDeleteByVariantId": [],
        }
        variables = {"priceListId": price_list, "input": pricing}
        self._mutated(SET_QUANTITY_PRICING, "quantityPricingByVariantUpdate", variables)

    def _known_catalogs(self) -> dict[str, tuple[str, str | None]]:
        """erpbridge's catalogs and their price lists, by the ERP's price list id."""
        if self._catalogs is None:
            found: dict[str, tuple[str, str | None]] = {}
            after = None
            while True:
                page = self._call(CATALOGS, {"after": after})["catalogs"]
                for node in page["nodes"]:
                    erp_id = _contract_of(node["title"])
                    if erp_id is not None:
                        found[erp_id] = (node["id"], (node["priceList"] or {}).get("id"))
                if not page["pageInfo"]["hasNextPage"]:
                    break
                after = page["pageInfo"]["endCursor"]
            self._catalogs = found
        return self._catalogs

    def _catalog(
        self, erp_id: str, currency: str | None, *, make: bool
    ) -> tuple[str | None, str | None]:
        """The catalog and price list of the ERP's price list. With `make`, the catalog is
        made when missing, and its price list too when the `currency` is known (a customer's
        price list may reach Shopify before any product priced in it)."""
        known = self._known_catalogs()
        catalog, price_list = known.get(erp_id, (None, None))
        if make and (catalog is None or (currency and price_list is None)):
            self._catalogs = None  # made meanwhile by another sink of the route?
            catalog, price_list = self._known_catalogs().get(erp_id, (None, None))
        if not make:
            return catalog, price_list
        title = contract_title(erp_id)
        if catalog is None:
            context: dict[str, list[str]] = {"companyLocationIds": []}
            catalog = self._mutated(CREATE_CATALOG, "catalogCreate", {"input": {
                "title": title, "status": "ACTIVE", "context": context}})["catalog"]["id"]  # fmt: skip
        if price_list is None and currency is not None:
            price_list = self._price_list(title, currency, str(catalog))
        self._known_catalogs()[erp_id] = (str(catalog), price_list)
        return catalog, price_list

    def _price_list(self, title: str, currency: str, catalog: str) -> str:
        """A price list named `title` made on the catalog; or, where one of that name is
        left (deleting a catalog keeps its price list unless asked), that one given to it."""
        adjustment = {"type": "PERCENTAGE_DECREASE", "value": 0.0}
        payload = self._call(CREATE_PRICE_LIST, {"input": {
            "name": title, "currency": currency, "catalogId": catalog,
            "parent": {"adjustment": adjustment}}})["priceListCreate"]  # fmt: skip
        errors = payload["userErrors"]
        if not any(e.get("code") == "TAKEN" for e in errors):
            if errors:
                raise StorefrontRefused("; ".join(_said(e) for e in errors))
            made: str = payload["priceList"]["id"]
            return made
        after = None
        while True:
            page = self._call(PRICE_LISTS, {"after": after})["priceLists"]
            left = [n for n in page["nodes"] if n["name"] == title]
            if left:
                break
            if not page["pageInfo"]["hasNextPage"]:
                raise StorefrontRefused("; ".join(_said(e) for e in errors))
            after = page["pageInfo"]["endCursor"]
        if left[0]["currency"] != currency:
            raise StorefrontRefused(
                f"Shopify's price list {title!r} is in {left[0]['currency']}, not {currency}"
            )
        self._mutated(UPDATE_CATALOG, "catalogUpdate",
                      {"id": catalog, "input": {"priceListId": left[0]["id"]}})  # fmt: skip
        adopted: str = left[0]["id"]
        return adopted

    def set_customer(self, customer: Customer) -> Synced[Customer]:
        tag = customer_tag(customer.customer_id)
        query = f"tag:{_quoted(tag)} OR email:{_quoted(customer.email or '')}"
        nodes = self._call(CUSTOMERS, {"query": query})["customers"]["nodes"]
        by_email = [n for n in nodes if _email(n) == customer.email]
        account, other = account_of(tag, by_email, nodes, _tag_of)
        if other is not None:
            raise StorefrontRefused(
                f"Shopify's account of {customer.email} is tagged {other}, another ERP customer's"
            )
        address = _mailing(customer)
        if account is None:
            fields = {"email": customer.email, "firstName": customer.name,
                      "phone": customer.phone, "tags": [tag],
                      "addresses": [] if address is None else [address]}  # fmt: skip
            made = self._set_customer(fields, {"email": customer.email})
            self._set_company(made, customer)
            return Synced(customer, SyncStatus.CREATED, made)
        changes: dict[str, Any] = {
            k: v
            for k, v, shown in (
                ("firstName", customer.name, account["firstName"]),
                ("email", customer.email, _email(account)),
                ("phone", customer.phone, (account["defaultPhoneNumber"] or {}).get("phoneNumber")),
            )
            if v != shown
        }
        if tag not in account["tags"]:
            changes["tags"] = [*account["tags"], tag]
        shown_addresses = [_as_input(a) for a in account["addressesV2"]["nodes"]]
        if address is not None and shown_addresses[:1] != [address]:
            # The first address of an account erpbridge tagged is the ERP's it set before.
            kept = shown_addresses[1:] if tag in account["tags"] else shown_addresses
            changes["addresses"] = [address, *(a for a in kept if a != address)]
        if changes:
            self._set_customer(changes, {"id": account["id"]})
        contracted = self._set_company(str(account["id"]), customer)
        status = SyncStatus.UPDATED if changes or contracted else SyncStatus.UNCHANGED
        return Synced(customer, status, str(account["id"]))

    def _set_company(self, account: str, customer: Customer) -> bool:
        """The account buys at its price list through its company's location: the company
        made (with the account as a contact at the location) when the customer has a price
        list, the location in that list's catalog and in no other of erpbridge's; whether
        anything changed."""
        query = f"external_id:{_quoted(customer.customer_id)}"
        found = self._call(COMPANY, {"query": query})["companies"]["nodes"]
        company = found[0] if found else None
        if company is None and customer.price_list is None:
            return False
        changed = company is None
        if company is None:
            company = self._make_company(customer)
        locations = company["locations"]["nodes"]
        if not locations:
            raise StorefrontRefused(
                f"Shopify's company of {customer.customer_id} has no location to buy at"
            )
        location = locations[0]
        contact = next(
            (c for c in company["contacts"]["nodes"] if c["customer"]["id"] == account), None
        )
        if contact is None:
            contact = self._mutated(ASSIGN_CONTACT, "companyAssignCustomerAsContact",
                                    {"companyId": company["id"], "customerId": account})[
                "companyContact"]  # fmt: skip
            changed = True
        # Checked apart from the contact, so a crash between the two is made good.
        placed = {r["companyLocation"]["id"] for r in contact["roleAssignments"]["nodes"]}
        if location["id"] not in placed:
            role = company["defaultRole"] or next(iter(company["contactRoles"]["nodes"]), None)
            if role is None:
                raise StorefrontRefused(f"Shopify's company {company['id']} has no contact role")
            self._mutated(ASSIGN_ROLE, "companyContactAssignRole",
                          {"contact": contact["id"], "role": role["id"],
                           "location": location["id"]})  # fmt: skip
            changed = True
        price_list = customer.price_list
        wanted = set() if price_list is None else {self._catalog(price_list, None, make=True)[0]}
        shown = {
            c["id"] for c in location["catalogs"]["nodes"] if _contract_of(c["title"]) is not None
        }
        context = {"companyLocationIds": [location["id"]]}
        for catalog, change in [*((c, "add") for c in sorted(wanted - shown, key=str)),
                                *((c, "remove") for c in sorted(shown - wanted))]:  # fmt: skip
            self._mutated(SET_CATALOG_CONTEXT, "catalogContextUpdate",
                          {"id": catalog, change: context})  # fmt: skip
            changed = True
        return changed

    def _make_company(self, customer: Customer) -> dict[str, Any]:
        variables = {"input": {
            "company": {"name": customer.name, "externalId": customer.customer_id},
            "companyLocation": {"name": customer.name}}}  # fmt: skip
        payload = self._call(CREATE_COMPANY, variables)["companyCreate"]
        errors = payload["userErrors"]
        if any(e.get("code") == "TAKEN" and "externalId" in (e.get("field") or []) for e in errors):
            # Made by an earlier request whose answer was lost: Shopify's search of companies
            # shows it once indexed, so the push is tried again.
            raise StorefrontUnavailable(
                f"Shopify has a company of {customer.customer_id} its search does not show yet"
            )
        if errors:
            raise StorefrontRefused("; ".join(_said(e) for e in errors))
        made: dict[str, Any] = payload["company"]
        return made

    def _mutated(self, document: str, name: str, variables: dict[str, Any]) -> dict[str, Any]:
        """The payload of a mutation Shopify took; its userErrors refuse it for good, but for
        a catalog or price list that this sink's list of them holds and the merchant has
        deleted since: the list is read again at the retry."""
        payload: dict[str, Any] = self._call(document, variables)[name]
        errors = payload["userErrors"]
        if any(e.get("code") in _GONE for e in errors):
            self._catalogs = None
            raise StorefrontUnavailable("; ".join(_said(e) for e in errors))
        if any(e.get("code") in _MADE_MEANWHILE for e in errors):
            raise StorefrontUnavailable("; ".join(_said(e) for e in errors))
        if errors:
            raise StorefrontRefused("; ".join(_said(e) for e in errors))
        return payload

    def _set_customer(self, fields: dict[str, Any], identifier: dict[str, Any]) -> str:
        variables = {"identifier": identifier, "input": fields}
        made: str = self._mutated(SET_CUSTOMER, "customerSet", variables)["customer"]["id"]
        return made

    def _set_product(
        self, fields: dict[str, Any], product_id: str | None = None
    ) -> tuple[str, str]:
        """`productSet` of `fields`, on the product `product_id` (None: a new one); its id
        and its (one) variant's."""
        variables: dict[str, Any] = {"input": fields}
        if product_id is not None:
            variables["identifier"] = {"id": product_id}
        made = self._mutated(SET_PRODUCT, "productSet", variables)["product"]
        return str(made["id"]), str(made["variants"]["nodes"][0]["id"])

    def _warehouse_of(self, fulfillment_order: Mapping[str, Any]) -> str | None:
        location = fulfillment_order["assignedLocation"]["location"]
        return None if location is None else self._locations.get(location["id"])

    def _create(self, shipment: Shipment, fulfillment_orders: Mapping[str, list[Any]]) -> str:
        tracking = {"company": shipment.carrier, "number": shipment.tracking_number}
        fulfillment = {
            "lineItemsByFulfillmentOrder": [
                {"fulfillmentOrderId": fo, "fulfillmentOrderLineItems": items}
                for fo, items in fulfillment_orders.items()
            ],
            "notifyCustomer": True,
            **({"trackingInfo": tracking} if shipment.tracking_number else {}),
        }
        variables = {"fulfillment": fulfillment, "message": shipment.marker}
        answer = self._call(CREATE_FULFILMENT, variables)["fulfillmentCreate"]
        if answer["userErrors"]:
            raise StorefrontRefused(
                "; ".join(f"{e.get('field')}: {e['message']}" for e in answer["userErrors"])
            )
        made: str = answer["fulfillment"]["id"]
        return made

    def _mutate(
        self, levels: list[StockLevel], start_from: Mapping[str, int | None]
    ) -> dict[int, dict[str, Any]]:
        """userErrors by the index of the quantity they name (-1 for the whole input)."""
        quantities = [
            {
                "inventoryItemId": self._items[level.sku],
                "locationId": gid("Location", level.location),
                "quantity": level.quantity,
                "changeFromQuantity": start_from.get(level.key),
            }
            for level in levels
        ]
        variables = {
            "input": {"name": "available", "reason": REASON, "quantities": quantities,
                      "referenceDocumentUri": "gid://erpbridge/StockAvailability/sync"},
            "key": idempotency_key(quantities),
        }  # fmt: skip
        payload = self._call(SET_QUANTITIES, variables)["inventorySetQuantities"]
        errors: dict[int, dict[str, Any]] = {}
        for error in payload["userErrors"]:
            field = error.get("field") or []
            index = int(field[2]) if len(field) > 2 and field[1] == "quantities" else -1
            errors.setdefault(index, error)
        return errors

    def _current(self, levels: Sequence[StockLevel]) -> dict[str, int | None]:
        """The available quantity Shopify holds now per level's key; None where the item is
        not stocked at the location."""
        found: dict[str, int | None] = {}
        by_location: dict[str, list[StockLevel]] = {}
        for level in levels:
            by_location.setdefault(level.location, []).append(level)
        for location, here in by_location.items():
            for start in range(0, len(here), BATCH_LIMIT):
                chunk = here[start : start + BATCH_LIMIT]
                ids = [self._items[level.sku] for level in chunk]
                nodes = self._call(LEVELS, {"ids": ids, "location": gid("Location", location)})[
                    "nodes"
                ]
                for level, node in zip(chunk, nodes, strict=True):
                    inventory = (node or {}).get("inventoryLevel")
                    quantities = inventory["quantities"] if inventory else []
                    found[level.key] = quantities[0]["quantity"] if quantities else None
        return found

    def _find_items(self, skus: Sequence[str]) -> None:
        now = self._clock()
        wanted = [sku for sku in skus if now >= self._unknown.get(sku, float("-inf"))]
        for start in range(0, len(wanted), LOOKUP_LIMIT):
            chunk = wanted[start : start + LOOKUP_LIMIT]
            answer = self._call(ITEMS, {"first": LOOKUP_LIMIT, "query": sku_query(chunk)})
            for node in answer["inventoryItems"]["nodes"]:
                if node["sku"] in chunk:
                    self._items[node["sku"]] = node["id"]
            for sku in chunk:
                if sku not in self._items:
                    self._unknown[sku] = now + _UNKNOWN_FOR_SECONDS

    def _call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        answer = request(
            self._client, "POST", self._url,
            json={"query": query, "variables": variables},
            headers={"X-Shopify-Access-Token": self._token},
        )  # fmt: skip
        errors = answer.get("errors")
        if errors:
            if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
                raise StorefrontUnavailable("Shopify: Throttled", refill_seconds(answer))
            raise StorefrontRefused(f"Shopify: {errors}")
        data: dict[str, Any] = answer["data"]
        return data


def metafield_key(name: str) -> str:
    """The metafield key of an ERP attribute's name: Shopify's keys are 2-64 letters,
    digits, - and _, so anything else becomes _ (and a one-letter name gets a second)."""
    key = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64]
    return key if len(key) >= 2 else f"{key}_"


def _metafield(key: str, value: str) -> dict[str, Any]:
    return {"namespace": ATTRIBUTES, "key": key, "type": "single_line_text_field", "value": value}


def _in_minor(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-minor_unit(currency)))


_Tiers = tuple[Decimal | None, tuple[tuple[int, Decimal], ...]]
"""A variant's pricing in a price list: its fixed price, and (minimum quantity, price)
breaks."""


def _tiers(contract: Contract) -> _Tiers:
    fixed = None
    breaks = []
    for start, amount in contract.tiers:
        if start <= 1:
            fixed = _in_minor(amount, contract.currency)
        else:
            breaks.append((start, _in_minor(amount, contract.currency)))
    return fixed, tuple(sorted(breaks))


def _shown_tiers(price: Mapping[str, Any]) -> _Tiers:
    """A PriceListPrice's pricing as `_tiers` gives it."""
    breaks = price["quantityPriceBreaks"]["nodes"]
    return Decimal(price["price"]["amount"]), tuple(
        sorted((b["minimumQuantity"], Decimal(b["price"]["amount"])) for b in breaks)
    )


def _contract_of(title: str) -> str | None:
    """The ERP's price list whose catalog has this title (None: not erpbridge's)."""
    prefix = contract_title("")
    return title[len(prefix) :] if title.startswith(prefix) and len(title) > len(prefix) else None


def _tag_of(account: Mapping[str, Any]) -> str | None:
    """The tag that marks an account as an ERP customer's."""
    return next((t for t in account["tags"] if t.startswith(CUSTOMER_TAG)), None)


def _email(account: Mapping[str, Any]) -> str | None:
    return (account.get("defaultEmailAddress") or {}).get("emailAddress")


def _mailing(customer: Customer) -> dict[str, Any] | None:
    """The ERP's first address as Shopify's MailingAddressInput."""
    address = customer.address
    if address is None:
        return None
    return {
        "firstName": address.name or customer.name,
        "address1": address.street,
        "city": address.city,
        "provinceCode": address.region,
        "zip": address.postal_code,
        "countryCode": address.country,
    }


def _as_input(shown: Mapping[str, Any]) -> dict[str, Any]:
    """A MailingAddress Shopify shows, as the input that would set it again."""
    fields = ("firstName", "address1", "city", "provinceCode", "zip")
    return {**{k: shown.get(k) for k in fields}, "countryCode": shown.get("countryCodeV2")}


def shipment_tag(shipment: Shipment) -> str:
    """The order tag that says erpbridge made the fulfilment (hashed when too long)."""
    tag = f"erpbridge-{shipment.fulfillment_id}"
    if len(tag) <= TAG_LIMIT:
        return tag
    return "erpbridge-" + hashlib.sha256(shipment.fulfillment_id.encode()).hexdigest()[:24]


def _take(
    lines: Sequence[tuple[str, int]], fulfillment_orders: Sequence[Mapping[str, Any]]
) -> dict[str | None, dict[str, list[Any]]]:
    """The fulfillment order line items (id, quantity) that ship `lines`, by location and
    fulfillment order; only what Shopify still has left to fulfil."""
    taken: dict[str | None, dict[str, list[Any]]] = {}
    for sku, quantity in lines:
        for fo in fulfillment_orders:
            location = (fo["assignedLocation"]["location"] or {}).get("id")
            for item in fo["lineItems"]["nodes"]:
                n = min(quantity, item["remainingQuantity"]) if item["sku"] == sku else 0
                if n > 0:
                    at = taken.setdefault(location, {}).setdefault(fo["id"], [])
                    at.append({"id": item["id"], "quantity": n})
                    quantity -= n
    return taken


def _said(error: Mapping[str, Any]) -> str:
    return f"{error.get('code')}: {error.get('message')}"


def refill_seconds(answer: Mapping[str, Any]) -> float | None:
    """How long until the bucket holds what the refused request asked for."""
    cost = (answer.get("extensions") or {}).get("cost") or {}
    status = cost.get("throttleStatus") or {}
    try:
        missing = float(cost["requestedQueryCost"]) - float(status["currentlyAvailable"])
        return max(0.0, missing) / float(status["restoreRate"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
