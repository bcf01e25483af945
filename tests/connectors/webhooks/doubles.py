"""HTTP doubles of the two admin APIs `erpbridge webhooks register` talks to, holding to the
documented request shapes (no real Shopify or WooCommerce can run here):

- Shopify's Admin GraphQL API: every request is parsed, validated and executed against
  Shopify's own 2026-01 schema (tests/fixtures/shopify-admin), so a query or mutation
  Shopify would refuse (an unknown field, a wrong argument or variable type, an enum value
  that is no topic) is refused here too; requests draw on a cost bucket and are THROTTLED
  with `extensions.cost.throttleStatus` when it runs dry, and `inventorySetQuantities`
  holds to its documented userErrors (compare-and-set on `changeFromQuantity`, reasons,
  negative quantities, items not stocked at a location, the `@idempotent` key); orders
  answer with their fulfillments and fulfillment orders, and `fulfillmentCreate` takes only
  line items of open fulfillment orders of one order at one location, within what remains
  to fulfil (its userErrors' words are the double's own);
- WooCommerce's /wp-json/wc/v3/webhooks, products, order refunds and order notes: each
  request's arguments are checked against the route's argument schema in WooCommerce's API
  index (tests/fixtures/woocommerce/_index.md): required, type, enum, and no unknown ones;
- Stripe's GET /v1/balance_transactions, as its API reference documents listing a payout's
  transactions: the secret key as the Basic user, `payout`, `limit` (1 to 100),
  `starting_after`, `expand[]`, nothing else; the list object it answers.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import graphql

from tests.connectors.webhooks.vendor import FIXTURES

SHOPIFY_TOKEN = "shpat_test_token"
STRIPE_KEY = "rk_test_balance_reader"
WOO_KEY, WOO_SECRET = "ck_test", "cs_test"
ADYEN_REPORT_USER, ADYEN_REPORT_PASSWORD = "report@Company.ErpbridgeCo", "report-password"


@cache
def shopify_schema() -> graphql.GraphQLSchema:
    path = FIXTURES / "shopify-admin" / "admin-2026-01.schema.graphql.gz"
    with gzip.open(path, "rt") as sdl:
        # Shopify's schema breaks a newer rule of the GraphQL spec (fields implementing an
        # interface field deprecated where it is not); what requests may say is unaffected.
        return graphql.build_schema(sdl.read(), assume_valid=True)


WEBHOOKS_ROUTE = "/wc/v3/webhooks"
REFUNDS_ROUTE = "/wc/v3/orders/(?P<order_id>[\\d]+)/refunds"
NOTES_ROUTE = "/wc/v3/orders/(?P<order_id>[\\d]+)/notes"
PRODUCTS_ROUTE = "/wc/v3/products"
PRODUCT_ROUTE = "/wc/v3/products/(?P<id>[\\d]+)"
VARIATIONS_ROUTE = "/wc/v3/products/(?P<product_id>[\\d]+)/variations"
VARIATIONS_BATCH_ROUTE = "/wc/v3/products/(?P<product_id>[\\d]+)/variations/batch"
CUSTOMERS_ROUTE = "/wc/v3/customers"
CUSTOMER_ROUTE = "/wc/v3/customers/(?P<id>[\\d]+)"
"""Routes of WooCommerce's API index, as it names them."""


@cache
@cache
def variation_properties() -> dict[str, str]:
    """A variation's writable properties and their types, from the documentation's table
    (the API index's example of the variations routes predates their `status`)."""
    text = (FIXTURES / "woocommerce" / "_product-variations.md").read_text()
    table = text.split("## Product variation properties ##", 1)[1].split("###", 1)[0]
    rows = re.findall(r"^\| `(\w+)`\s*\| (\S+)\s*\|(.*)$", table, re.M)
    return {name: kind for name, kind, said in rows if "read-only" not in said}


def woocommerce_route_args(route: str) -> dict[str, dict[str, Any]]:
    """Method -> argument schema of one route, from the API index example."""
    text = (FIXTURES / "woocommerce" / "_index.md").read_text()
    index = json.loads(re.search(r"```json\n(.*?)```", text, re.S).group(1))  # type: ignore[union-attr]
    args = {}
    for endpoint in index["routes"][route]["endpoints"]:
        for method in endpoint["methods"]:
            args[method] = endpoint["args"]
    return args


@dataclass
class Double:
    """What a double holds and what it was asked."""

    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    transactions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Stripe: balance transactions by payout id."""
    refunds: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    """WooCommerce: refunds by order id."""
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    """WooCommerce: the notes of each order there is, by order id."""
    products: dict[int, dict[str, Any]] = field(default_factory=dict)
    """WooCommerce: products (id, sku, manage_stock, stock_quantity, and what a create or
    update gave them: name, description, regular_price, status) and variations (type
    variation, parent_id, regular_price, visible, attributes [{id, name, option}],
    meta_data) by id."""
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    """WooCommerce: customers (id, email, username, first_name, last_name, billing, shipping,
    meta_data) by id."""
    reports: dict[str, str] = field(default_factory=dict)
    """Adyen: report files by their download path."""
    payouts: list[dict[str, Any]] = field(default_factory=list)
    """Shopify Payments: payouts (ShopifyPaymentsPayout fields)."""
    balance: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Shopify Payments: balance transactions by payout (legacy) id."""
    order_transactions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Shopify: OrderTransaction nodes by global id."""
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Shopify: by order global id, its `tags`, `fulfillments` ({id, trackingInfo: [{number,
    company}], message}) and `fulfillmentOrders` ({id, status, location, lineItems: [{id,
    sku, remainingQuantity}]})."""
    stock: dict[str, dict[str, int]] = field(default_factory=dict)
    """Shopify: available quantity by inventory item and location (global ids)."""
    stock_skus: dict[str, str] = field(default_factory=dict)
    """Shopify: the SKU of each inventory item."""
    shopify_customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Shopify: customers by global id: firstName, email, phone, tags, addresses
    (MailingAddressInput fields)."""
    shopify_products: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Shopify: products by global id: handle, title, descriptionHtml, status, productOptions
    ({name, values: [{name}]}), metafields and variants ({id, sku, price, tracked,
    optionValues: [{optionName, name}], metafields})."""
    shopify_ids: Iterator[int] = field(default_factory=lambda: itertools.count(7000))
    """Shopify: the numbers of the variants it makes."""
    hidden_handles: set[str] = field(default_factory=set)
    """Shopify: handles productByIdentifier does not find yet (made by another client after
    the one asking looked)."""
    catalogs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Shopify: company-location catalogs by global id: title, status, priceList (its id or
    None) and locations (company location ids)."""
    price_lists: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Shopify: price lists by global id: name, currency, catalog (id or None) and prices
    (by variant id: {price: amount text, breaks: [{id, minimumQuantity, price}]})."""
    companies: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Shopify: B2B companies by global id: name, externalId, locations ([{id, name}]),
    roles ([{id, name}], the first the default), contacts ([{id, customer, roles: [(role,
    location)]}])."""
    unindexed: set[str] = field(default_factory=set)
    """Shopify: companies its search does not show yet (by id)."""
    idempotent: dict[str, tuple[str, Any]] = field(default_factory=dict)
    """Shopify: by idempotency key, the input it came with and the answer given."""
    bucket: Bucket = field(default_factory=lambda: Bucket(1000.0, 100.0))
    """Shopify: the app's cost budget on the shop."""
    failing: bool = False
    """Answers 500 to everything, as an API having a bad moment."""
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    url: str = ""


@dataclass
class Bucket:
    """Shopify's leaky bucket of query cost: `maximum` points, restored at `restore` a second."""

    maximum: float
    restore: float
    available: float = -1.0
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.available < 0:
            self.available = self.maximum

    def take(self, cost: float) -> bool:
        now = time.monotonic()
        self.available = min(self.maximum, self.available + (now - self.at) * self.restore)
        self.at = now
        if cost > self.available:
            return False
        self.available -= cost
        return True

    def status(self, cost: float) -> dict[str, Any]:
        return {"requestedQueryCost": cost, "throttleStatus": {
            "maximumAvailable": self.maximum, "currentlyAvailable": int(self.available),
            "restoreRate": self.restore}}  # fmt: skip


_REASONS = frozenset({
    "correction", "cycle_count_available", "damaged", "movement_created", "movement_updated",
    "movement_received", "movement_canceled", "other", "promotion", "quality_control",
    "received", "reservation_created", "reservation_deleted", "reservation_updated", "restock",
    "safety_stock", "shrinkage",
})  # fmt: skip
"""The reasons Shopify documents for inventorySetQuantities."""


def _cost(document: graphql.DocumentNode, variables: dict[str, Any]) -> int:
    """The double's rule, after Shopify's: a mutation 10 points, a query 1 plus the objects
    a connection or a nodes list may return."""
    (operation,) = [
        d for d in document.definitions if isinstance(d, graphql.OperationDefinitionNode)
    ]
    if operation.operation is graphql.OperationType.MUTATION:
        return 10
    cost = 1
    for node in operation.selection_set.selections:
        if isinstance(node, graphql.FieldNode):
            args = {
                a.name.value: graphql.value_from_ast_untyped(a.value, variables)
                for a in node.arguments or ()
            }
            cost += len(args.get("ids") or []) or int(args.get("first") or 0)
    return cost


class _Handler(BaseHTTPRequestHandler):
    double: Double

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _refuse(self, status: int, why: str) -> None:
        self.double.refused.append(why)
        self._answer(status, {"errors": why})

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length", 0))
        return json.loads(self.rfile.read(length)) if length else None


class _Shopify(_Handler):
    _MAX_PAGE = 250
    """Shopify's largest page (`first`) and `nodes(ids:)` list."""

    def do_POST(self) -> None:
        if self.double.failing:
            return self._refuse(503, "Service Unavailable")
        if self.path != "/admin/api/2026-01/graphql.json":
            return self._refuse(404, f"no such endpoint {self.path}")
        if self.headers.get("X-Shopify-Access-Token") != SHOPIFY_TOKEN:
            return self._refuse(401, "[API] Invalid API key or access token")
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            return self._refuse(415, "the body must be application/json")
        body = self._body()
        if set(body) - {"query", "variables", "operationName"} or "query" not in body:
            return self._refuse(400, f"not a GraphQL request: {sorted(body)}")
        self.double.requests.append(("POST", self.path, body))
        document = graphql.parse(body["query"])
        errors = graphql.validate(shopify_schema(), document)
        if errors:
            return self._refuse(200, "; ".join(e.message for e in errors))
        cost = _cost(document, body.get("variables") or {})
        if not self.double.bucket.take(cost):
            self.double.refused.append("Throttled")
            return self._answer(200, {
                "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED",
                            "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": {"cost": self.double.bucket.status(cost)}})  # fmt: skip
        result = graphql.execute_sync(
            shopify_schema(), document, root_value=self, variable_values=body.get("variables")
        )
        if result.errors:
            return self._refuse(200, "; ".join(e.message for e in result.errors))
        self._answer(200, {"data": result.data,
                           "extensions": {"cost": self.double.bucket.status(cost)}})  # fmt: skip

    # Root fields, resolved by graphql-core's default resolver (attributes of root_value).
    def webhookSubscriptions(
        self, info: Any, first: int, after: str | None = None, **_: Any
    ) -> Any:
        start = int(after or 0)
        page = self.double.subscriptions[start : start + first]
        more = start + first < len(self.double.subscriptions)
        return {"nodes": page, "pageInfo": {"hasNextPage": more, "endCursor": str(start + first),
                                            "hasPreviousPage": start > 0, "startCursor": str(start)}}  # fmt: skip

    def shopifyPaymentsAccount(self, info: Any) -> Any:
        double = self.double

        def payouts(info: Any, first: int, after: str | None = None, query: str | None = None,
                    sortKey: str = "ISSUED_AT", **_: Any) -> Any:  # fmt: skip
            if sortKey != "ISSUED_AT":
                raise ValueError(f"the double sorts payouts by ISSUED_AT only, not {sortKey}")
            found = [p for p in double.payouts if _matches(p, query or "")]
            return _page(sorted(found, key=lambda p: _instant(p["issuedAt"])), first, after)

        def balanceTransactions(info: Any, first: int, after: str | None = None,
                                query: str | None = None, **_: Any) -> Any:  # fmt: skip
            transfer = re.fullmatch(r"payments_transfer_id:(\d+)", query or "")
            if transfer is None:
                raise ValueError(f"the double filters by payments_transfer_id only, not {query!r}")
            return _page(double.balance.get(transfer.group(1), []), first, after)

        return {"payouts": payouts, "balanceTransactions": balanceTransactions}

    def nodes(self, info: Any, ids: list[str]) -> Any:
        if len(ids) > self._MAX_PAGE:
            raise ValueError(f"nodes takes at most {self._MAX_PAGE} ids")
        return [self.double.order_transactions.get(i) or self._item(i) for i in ids]

    def _item(self, item: str) -> Any:
        if item not in self.double.stock_skus:
            return None
        stock = self.double.stock

        def inventoryLevel(info: Any, locationId: str) -> Any:
            if locationId not in stock.get(item, {}):
                return None

            def quantities(info: Any, names: list[str]) -> Any:
                if names != ["available"]:
                    raise ValueError(f"the double holds available quantities only, not {names}")
                return [{"name": "available", "quantity": stock[item][locationId]}]

            return {"quantities": quantities}

        return {"__typename": "InventoryItem", "id": item, "sku": self.double.stock_skus[item],
                "inventoryLevel": inventoryLevel}  # fmt: skip

    def productVariants(self, info: Any, first: int, query: str | None = None, **_: Any) -> Any:
        skus = _skus_of(query)
        found = [
            {**_owner_view(variant), "product": _product_view(product),
             "selectedOptions": [{"name": v["optionName"], "value": v["name"]}
                                 for v in variant.get("optionValues") or []]}
            for product in self.double.shopify_products.values()
            for variant in product["variants"]
            if variant["sku"] in skus
        ]  # fmt: skip
        return _page(found, first, None)

    def productByIdentifier(self, info: Any, identifier: dict[str, Any]) -> Any:
        if set(identifier) - {"handle"}:
            raise ValueError("the double finds products by identifier's handle only")
        if identifier["handle"] in self.double.hidden_handles:
            return None
        found = [p for p in self.double.shopify_products.values()
                 if p.get("handle") == identifier["handle"]]  # fmt: skip
        return _product_view(found[0]) if found else None

    def productUpdate(self, info: Any, product: dict[str, Any]) -> Any:
        """Shopify's productUpdate: the fields given set on the product of the id; a list
        field (metafields) is not taken here."""
        held = self.double.shopify_products.get(product.get("id") or "")
        if held is None:
            return {"product": None,
                    "userErrors": [{"field": ["id"], "message": "Product does not exist"}]}  # fmt: skip
        # The schema's default of deleteConflictingConstrainedMetafields comes with every input.
        given = set(product) - {"deleteConflictingConstrainedMetafields"}
        if given - {"id", "title", "descriptionHtml", "status", "handle"}:
            raise ValueError("the double updates a product's title, description, status, handle")
        if "handle" in product and self._handle_taken(product["handle"], held):
            return {"product": None, "userErrors": [
                {"field": ["handle"], "message": f"Handle '{product['handle']}' already in use."}]}  # fmt: skip
        held.update({k: product[k] for k in given - {"id"}})
        return {"product": {"id": held["id"]}, "userErrors": []}

    def productVariantsBulkCreate(
        self, info: Any, productId: str, variants: list[dict[str, Any]], **_: Any
    ) -> Any:
        """Shopify's productVariantsBulkCreate, all or nothing: each variant names a value of
        every option of the product and no other option (a new value is added to its
        option), no two variants the same values; the SKU is the inventory item's."""
        product = self.double.shopify_products.get(productId)
        if product is None:
            return _variants_refused(["productId"], "PRODUCT_DOES_NOT_EXIST",
                                     "Product does not exist")  # fmt: skip
        made = []
        for index, variant in enumerate(variants):
            refused = self._check_variant(product, variant, ["variants", str(index)], made)
            if refused is not None:
                return refused
            item = variant.get("inventoryItem") or {}
            made.append({"id": f"gid://shopify/ProductVariant/{next(self.double.shopify_ids)}",
                         "sku": item.get("sku"), "price": variant.get("price") or "0.00",
                         "tracked": item.get("tracked"),
                         "optionValues": list(variant["optionValues"]),
                         "metafields": _metafields_of(variant.get("metafields") or [])})  # fmt: skip
        for variant in made:
            _add_values(product, variant["optionValues"])
        product["variants"] += made
        return {"productVariants": [{"id": v["id"]} for v in made], "userErrors": []}

    def productVariantsBulkUpdate(
        self, info: Any, productId: str, variants: list[dict[str, Any]], **_: Any
    ) -> Any:
        """Shopify's productVariantsBulkUpdate, all or nothing: each names a variant of the
        product by id; its price and option values (the rules of productVariantsBulkCreate)
        set where given."""
        product = self.double.shopify_products.get(productId)
        if product is None:
            return _variants_refused(["productId"], "PRODUCT_DOES_NOT_EXIST",
                                     "Product does not exist")  # fmt: skip
        held = {v["id"]: v for v in product["variants"]}
        for index, variant in enumerate(variants):
            where = ["variants", str(index)]
            if variant.get("id") not in held:
                return _variants_refused([*where, "id"], "PRODUCT_VARIANT_DOES_NOT_EXIST",
                                         "Product variant does not exist")  # fmt: skip
            if set(variant) - {"id", "price", "optionValues"}:
                raise ValueError("the double updates a variant's price and option values only")
            if "optionValues" in variant:
                others = [v for v in product["variants"] if v["id"] != variant["id"]]
                refused = self._check_variant(product, variant, where, others)
                if refused is not None:
                    return refused
        for variant in variants:
            shown = held[variant["id"]]
            shown.update({k: v for k, v in variant.items() if k != "id"})
            _add_values(product, shown["optionValues"])
        return {"productVariants": [{"id": v["id"]} for v in variants], "userErrors": []}

    def productVariantsBulkDelete(self, info: Any, productId: str, variantsIds: list[str]) -> Any:
        product = self.double.shopify_products.get(productId)
        if product is None:
            return _refused("product", ["productId"], "PRODUCT_DOES_NOT_EXIST",
                            "Product does not exist")  # fmt: skip
        held = {v["id"] for v in product["variants"]}
        if set(variantsIds) - held:
            return _refused("product", ["variantsIds"],
                            "AT_LEAST_ONE_VARIANT_DOES_NOT_BELONG_TO_THE_PRODUCT",
                            "At least one variant does not belong to the product")  # fmt: skip
        if held <= set(variantsIds):
            return _refused("product", ["variantsIds"], "CANNOT_DELETE_LAST_VARIANT",
                            "Cannot delete the last variant of a product")  # fmt: skip
        product["variants"] = [v for v in product["variants"] if v["id"] not in variantsIds]
        return {"product": {"id": productId}, "userErrors": []}

    @staticmethod
    def _check_variant(
        product: dict[str, Any], variant: dict[str, Any], where: list[str],
        others: list[dict[str, Any]],
    ) -> Any:  # fmt: skip
        names = [v.get("optionName") for v in variant.get("optionValues") or []]
        options = [o["name"] for o in product.get("productOptions") or []]
        if set(names) - set(options):
            return _variants_refused([*where, "optionValues"],
                                     "OPTION_VALUES_FOR_NUMBER_OF_UNKNOWN_OPTIONS",
                                     "Variant options are more than the product options")  # fmt: skip
        if sorted(names) != sorted(options):
            return _variants_refused([*where, "optionValues"], "NEED_TO_ADD_OPTION_VALUES",
                                     "Variant options are not enough")  # fmt: skip
        values = sorted((v["optionName"], v["name"]) for v in variant["optionValues"])
        for other in [*product["variants"], *others]:
            if (
                other is not variant
                and values
                == sorted((v["optionName"], v["name"]) for v in other.get("optionValues") or [])
                and other.get("id") != variant.get("id")
            ):
                return _variants_refused([*where, "optionValues"], "VARIANT_ALREADY_EXISTS",
                                         "Variant already exists")  # fmt: skip
        if not re.fullmatch(r"-?\d+(\.\d+)?", str(variant.get("price") or "0")):
            return _variants_refused([*where, "price"], "INVALID_INPUT", "Price is invalid")
        return None

    def _handle_taken(self, handle: str, product: dict[str, Any] | None) -> bool:
        return any(p.get("handle") == handle and p is not product
                   for p in self.double.shopify_products.values())  # fmt: skip

    def customers(self, info: Any, first: int, query: str | None = None, **_: Any) -> Any:
        terms = _terms(query, {"tag", "email"})
        found = [
            _customer_view(c)
            for c in self.double.shopify_customers.values()
            if any(c["email"] == v if f == "email" else v in c["tags"] for f, v in terms)
        ]
        return _page(found, first, None)

    def customerSet(
        self, info: Any, input: dict[str, Any], identifier: dict[str, Any] | None = None
    ) -> Any:
        """Shopify's customerSet as its reference describes it: no identifier creates, an id
        updates, an email upserts by it; a list field given replaces the list; an email
        belongs to one customer."""
        customers = self.double.shopify_customers
        if set(identifier or {}) - {"id", "email"}:
            raise ValueError("the double finds customers by id or email only")
        found: dict[str, Any] | None = None
        if identifier and "id" in identifier:
            found = customers.get(identifier["id"])
            if found is None:
                return _customer_refused(["identifier", "id"], "NOT_FOUND",
                                         "Customer does not exist")  # fmt: skip
        elif identifier and "email" in identifier:
            found = next((c for c in customers.values() if c["email"] == identifier["email"]),
                         None)  # fmt: skip
        email = input.get("email", (found or {}).get("email"))
        if any(c["email"] == email and c is not found for c in customers.values()):
            return _customer_refused(["input", "email"], "TAKEN", "Email has already been taken")
        if found is None:
            found = {"id": f"gid://shopify/Customer/{5000 + len(customers)}", "firstName": None,
                     "email": None, "phone": None, "tags": [], "addresses": []}  # fmt: skip
            customers[found["id"]] = found
        found.update({k: v for k, v in input.items() if k in found and k != "id"})
        return {"customer": {"id": found["id"]}, "userErrors": []}

    def productSet(
        self, info: Any, input: dict[str, Any], identifier: dict[str, Any] | None = None,
        synchronous: bool = True,
    ) -> Any:  # fmt: skip
        """Shopify's productSet as its reference describes it: the product's variants become
        the ones listed (an id names one it has), options are required to create variants,
        a price is a decimal amount; metafields are added or updated by namespace and key
        (2-64 characters of letters, digits, - and _; a namespace 3-255), a new one needs
        its type, and a single-line text holds no line break."""
        if not synchronous:
            raise ValueError("the double runs productSet synchronously only")
        products = self.double.shopify_products
        product_id = (identifier or {}).get("id")
        if set(identifier or {}) - {"id"}:
            raise ValueError("the double finds products by id only")
        if product_id is not None and product_id not in products:
            return _set_refused(["identifier", "id"], "PRODUCT_DOES_NOT_EXIST",
                                "Product does not exist")  # fmt: skip
        product = products.get(product_id) if product_id else None
        options = input.get("productOptions") or (product or {}).get("productOptions")
        if input.get("variants") and not options:
            return _set_refused(["input", "productOptions"], "INVALID_PRODUCT",
                                "Options are required to set variants")  # fmt: skip
        names = {o["name"] for o in options or []}
        variants = []
        for index, variant in enumerate(input.get("variants") or []):
            where = ["input", "variants", str(index)]
            if {v["optionName"] for v in variant["optionValues"]} - names:
                return _set_refused(where, "INVALID_VARIANT", "Option does not exist")
            if not re.fullmatch(r"-?\d+(\.\d+)?", str(variant.get("price") or "0")):
                return _set_refused([*where, "price"], "INVALID", "Price is invalid")
            known = {v["id"]: v for v in (product or {}).get("variants", [])}
            if "id" in variant and variant["id"] not in known:
                return _set_refused([*where, "id"], "PRODUCT_VARIANT_DOES_NOT_EXIST",
                                    "Product variant does not exist")  # fmt: skip
            shown = dict(known.get(variant.get("id", ""), {}))
            shown.update(
                id=variant.get("id")
                or f"gid://shopify/ProductVariant/{next(self.double.shopify_ids)}",
                sku=variant.get("sku", shown.get("sku")),
                price=variant.get("price", shown.get("price", "0.00")),
                tracked=(variant.get("inventoryItem") or {}).get("tracked", shown.get("tracked")),
                optionValues=list(variant["optionValues"]),
                metafields=_metafields_of(variant.get("metafields") or [])
                if "metafields" in variant
                else shown.get("metafields") or {},
            )
            variants.append(shown)
        if product is None and input.get("handle") and self._handle_taken(input["handle"], None):
            return _set_refused(["input", "handle"], "HANDLE_NOT_UNIQUE",
                                "Handle already in use. Please provide a new handle.")  # fmt: skip
        # A list field given replaces the list: metafields it does not name are deleted.
        held = {} if "metafields" in input else dict((product or {}).get("metafields") or {})
        if len(input.get("metafields") or []) > _METAFIELDS_LIMIT:
            return _set_refused(["input", "metafields"], "INVALID_METAFIELD",
                                "Allows a maximum of 25 metafields")  # fmt: skip
        for index, metafield in enumerate(input.get("metafields") or []):
            where = ["input", "metafields", str(index)]
            namespace, key = metafield.get("namespace") or "", metafield.get("key") or ""
            if not re.fullmatch(r"[\w-]{3,255}", namespace, re.A) or not re.fullmatch(
                r"[\w-]{2,64}", key, re.A
            ):
                return _set_refused(where, "INVALID_METAFIELD", "Metafield is not valid.")
            kind = metafield.get("type") or (held.get((namespace, key)) or {}).get("type")
            value = metafield.get("value") or ""
            if (
                kind is None
                or not value.strip()
                or (kind == "single_line_text_field" and "\n" in value)
            ):
                return _set_refused([*where, "value"], "INVALID_METAFIELD",
                                    "Metafield is not valid.")  # fmt: skip
            held[namespace, key] = {"namespace": namespace, "key": key, "type": kind,
                                    "value": value}  # fmt: skip
        if product is None:
            product = {"id": f"gid://shopify/Product/{9000 + len(products)}", "title": "",
                       "descriptionHtml": "", "status": "ACTIVE", "variants": []}  # fmt: skip
            products[product["id"]] = product
            # Made of its title when not given; a suffix makes it unique.
            handle = input.get("handle") or re.sub(
                r"[^a-z0-9]+", "-", input.get("title", "").lower()
            )
            while self._handle_taken(handle, product):
                handle += "-1"
            product["handle"] = handle
        product["metafields"] = held
        product.update({k: v for k, v in input.items() if k not in ("variants", "metafields")})
        if "variants" in input:
            product["variants"] = variants
        ids = [{"id": v["id"]} for v in product["variants"]]
        return {"product": {"id": product["id"],
                            "variants": lambda info, first, **_: {"nodes": ids[:first]}},
                "productSetOperation": None, "userErrors": []}  # fmt: skip

    def metafieldsSet(self, info: Any, metafields: list[dict[str, Any]]) -> Any:
        """Shopify's metafieldsSet: at most 25, all or nothing; each added or updated on its
        owner by namespace and key (the key and namespace rules of productSet), a new one
        with its type, no value blank."""

        def refused(index: int, field: str, code: str, message: str) -> Any:
            return {"metafields": None, "userErrors": [
                {"field": ["metafields", str(index), field], "code": code, "message": message,
                 "elementIndex": index}]}  # fmt: skip

        if len(metafields) > _METAFIELDS_LIMIT:
            return {"metafields": None, "userErrors": [{
                "field": ["metafields"], "code": "LESS_THAN_OR_EQUAL_TO", "elementIndex": None,
                "message": "Exceeded the maximum metafields input limit of 25."}]}  # fmt: skip
        owners = self._metafield_owners()
        for index, metafield in enumerate(metafields):
            owner = owners.get(metafield["ownerId"])
            if owner is None:
                return refused(index, "ownerId", "INVALID", "Owner does not exist")
            namespace, key = metafield.get("namespace") or "", metafield["key"]
            if not re.fullmatch(r"[\w-]{3,255}", namespace, re.A):
                return refused(index, "namespace", "INVALID", "Namespace is invalid")
            if not re.fullmatch(r"[\w-]{2,64}", key, re.A):
                return refused(index, "key", "INVALID", "Key is invalid")
            held = (owner.get("metafields") or {}).get((namespace, key))
            if (metafield.get("type") or (held or {}).get("type")) is None:
                return refused(index, "type", "BLANK", "Type can't be blank")
            if not metafield["value"].strip():
                return refused(index, "value", "BLANK", "Value can't be blank")
        for metafield in metafields:
            owner = owners[metafield["ownerId"]]
            namespace = metafield["namespace"]
            held = owner.setdefault("metafields", {})
            kind = metafield.get("type") or held[namespace, metafield["key"]]["type"]
            held[namespace, metafield["key"]] = {"namespace": namespace, "key": metafield["key"],
                                                 "type": kind, "value": metafield["value"]}  # fmt: skip
        return {"metafields": [{"key": m["key"]} for m in metafields], "userErrors": []}

    def metafieldsDelete(self, info: Any, metafields: list[dict[str, Any]]) -> Any:
        """Each metafield named by its owner, namespace and key deleted; one that is not
        there is answered as not deleted (null), as Shopify does."""
        deleted = []
        owners = self._metafield_owners()
        for named in metafields:
            owner = owners.get(named["ownerId"]) or {}
            found = (owner.get("metafields") or {}).pop((named["namespace"], named["key"]), None)
            deleted.append(None if found is None else dict(named))
        return {"deletedMetafields": deleted, "userErrors": []}

    def _metafield_owners(self) -> dict[str, dict[str, Any]]:
        """Products and their variants by id: what holds metafields here."""
        products = self.double.shopify_products
        return {**products, **{v["id"]: v for p in products.values() for v in p["variants"]}}

    # -- B2B: catalogs, price lists, companies ---------------------------------------------

    def catalogs(
        self, info: Any, first: int, after: str | None = None, type: str | None = None,
        query: str | None = None, **_: Any,
    ) -> Any:  # fmt: skip
        if type != "COMPANY_LOCATION" or query is not None:
            raise ValueError("the double lists company-location catalogs, unfiltered, only")
        return _page([self._catalog_view(c) for c in self.double.catalogs.values()], first, after)

    def _catalog_view(self, catalog: dict[str, Any]) -> dict[str, Any]:
        price_list = self.double.price_lists.get(catalog["priceList"] or "")
        return {"__typename": "CompanyLocationCatalog", "id": catalog["id"],
                "title": catalog["title"], "status": catalog["status"],
                "priceList": None if price_list is None else self._price_list_view(price_list)}  # fmt: skip

    def priceLists(self, info: Any, first: int, after: str | None = None, **_: Any) -> Any:
        shown = [self._price_list_view(p) for p in self.double.price_lists.values()]
        return _page(shown, first, after)

    def catalogUpdate(self, info: Any, id: str, input: dict[str, Any]) -> Any:
        """Only a catalog's price list, as erpbridge changes it: the list given becomes the
        catalog's, and its earlier catalog's no more."""
        catalog = self.double.catalogs.get(id)
        if catalog is None:
            return _refused("catalog", ["id"], "CATALOG_NOT_FOUND", "The catalog wasn't found.")
        if set(input) != {"priceListId"}:
            raise ValueError("the double changes a catalog's price list only")
        price_list = self.double.price_lists.get(input["priceListId"])
        if price_list is None:
            return _refused("catalog", ["input", "priceListId"], "PRICE_LIST_NOT_FOUND",
                            "Price list not found.")  # fmt: skip
        for other in self.double.catalogs.values():
            if other["priceList"] == price_list["id"]:
                other["priceList"] = None
        catalog["priceList"], price_list["catalog"] = price_list["id"], id
        return {"catalog": {"__typename": "CompanyLocationCatalog", "id": id}, "userErrors": []}

    def priceList(self, info: Any, id: str) -> Any:
        found = self.double.price_lists.get(id)
        return None if found is None else self._price_list_view(found)

    def _price_list_view(self, price_list: dict[str, Any]) -> dict[str, Any]:
        def prices(info: Any, first: int, query: str | None = None,
                   originType: str | None = None, **_: Any) -> Any:  # fmt: skip
            wanted = {f"gid://shopify/ProductVariant/{v}" for _, v in _terms(query, {"variant_id"})}
            shown = [
                {"originType": "FIXED",
                 "price": {"amount": price["price"], "currencyCode": price_list["currency"]},
                 "quantityPriceBreaks": lambda info, first, breaks=price["breaks"], **_: {
                     "nodes": [{"minimumQuantity": b["minimumQuantity"],
                                "price": {"amount": b["price"],
                                          "currencyCode": price_list["currency"]}}
                               for b in breaks[:first]]}}
                for variant, price in price_list["prices"].items()
                if not wanted or variant in wanted
            ]  # fmt: skip
            return _page(shown if originType in (None, "FIXED") else [], first, None)

        return {"id": price_list["id"], "name": price_list["name"],
                "currency": price_list["currency"], "prices": prices}  # fmt: skip

    def catalogCreate(self, info: Any, input: dict[str, Any]) -> Any:
        context = input["context"]
        if set(k for k, v in context.items() if v is not None) != {"companyLocationIds"}:
            return _refused("catalog", ["input", "context"], "MUST_PROVIDE_EXACTLY_ONE_CONTEXT_TYPE",
                            "Must provide exactly one context type.")  # fmt: skip
        if set(context["companyLocationIds"]) - self._locations():
            return _refused("catalog", ["input", "context", "companyLocationIds"],
                            "COMPANY_LOCATION_NOT_FOUND", "The company location could not be found.")  # fmt: skip
        if not input["title"].strip():
            return _refused("catalog", ["input", "title"], "BLANK", "Title can't be blank")
        if input.get("priceListId") and input["priceListId"] not in self.double.price_lists:
            return _refused("catalog", ["input", "priceListId"], "PRICE_LIST_NOT_FOUND",
                            "Price list not found.")  # fmt: skip
        made = {"id": f"gid://shopify/CompanyLocationCatalog/{100 + len(self.double.catalogs)}",
                "title": input["title"], "status": input["status"],
                "priceList": input.get("priceListId"),
                "locations": list(context["companyLocationIds"])}  # fmt: skip
        self.double.catalogs[made["id"]] = made
        return {"catalog": {"__typename": "CompanyLocationCatalog", "id": made["id"]},
                "userErrors": []}  # fmt: skip

    def priceListCreate(self, info: Any, input: dict[str, Any]) -> Any:
        """A price list's name is unique; one given a catalog becomes the catalog's, whose
        earlier price list is unlinked."""
        lists = self.double.price_lists
        if any(p["name"] == input["name"] for p in lists.values()):
            return _refused("priceList", ["input", "name"], "TAKEN", "Name has already been taken")
        catalog = input.get("catalogId")
        if catalog is not None and catalog not in self.double.catalogs:
            return _refused("priceList", ["input", "catalogId"], "CATALOG_DOES_NOT_EXIST",
                            "Catalog does not exist")  # fmt: skip
        made = {"id": f"gid://shopify/PriceList/{200 + len(lists)}", "name": input["name"],
                "currency": input["currency"], "catalog": catalog, "prices": {}}  # fmt: skip
        lists[made["id"]] = made
        if catalog is not None:
            earlier = lists.get(self.double.catalogs[catalog]["priceList"] or "")
            if earlier is not None:
                earlier["catalog"] = None
            self.double.catalogs[catalog]["priceList"] = made["id"]
        return {"priceList": {"id": made["id"]}, "userErrors": []}

    def quantityPricingByVariantUpdate(
        self, info: Any, priceListId: str, input: dict[str, Any]
    ) -> Any:
        """Shopify's rules as its reference gives them: deletes before adds, all or nothing;
        prices in the price list's currency, of variants that exist, one per variant; a
        price break needs the variant's fixed price."""
        price_list = self.double.price_lists.get(priceListId)
        if price_list is None:
            return _pricing_refused(["priceListId"], "PRICE_LIST_NOT_FOUND",
                                    "Price List does not exist.")  # fmt: skip
        if (
            input["quantityRulesToAdd"]
            or input["quantityRulesToDeleteByVariantId"]
            or input["quantityPriceBreaksToDelete"]
        ):
            raise ValueError("the double sets prices and breaks by variant only")
        variants = {v["id"] for p in self.double.shopify_products.values() for v in p["variants"]}
        prices = {k: {**v, "breaks": list(v["breaks"])} for k, v in price_list["prices"].items()}
        for index, variant in enumerate(input["pricesToDeleteByVariantId"]):
            if variant not in prices:
                return _pricing_refused(["input", "pricesToDeleteByVariantId", str(index)],
                                        "PRICE_DELETE_VARIANT_NOT_FOUND",
                                        "Fixed price's variant not found.")  # fmt: skip
            del prices[variant]
        for index, variant in enumerate(input.get("quantityPriceBreaksToDeleteByVariantId") or []):
            if variant not in variants:
                return _pricing_refused(
                    ["input", "quantityPriceBreaksToDeleteByVariantId", str(index)],
                    "QUANTITY_PRICE_BREAK_DELETE_BY_VARIANT_ID_VARIANT_NOT_FOUND",
                    "Variant to delete by is not found.")  # fmt: skip
            if variant in prices:
                prices[variant]["breaks"] = []
        seen = set()
        for index, price in enumerate(input["pricesToAdd"]):
            where = ["input", "pricesToAdd", str(index)]
            if price["variantId"] not in variants:
                return _pricing_refused([*where, "variantId"], "PRICE_ADD_VARIANT_NOT_FOUND",
                                        "Fixed price's variant not found.")  # fmt: skip
            if price["price"]["currencyCode"] != price_list["currency"]:
                return _pricing_refused([*where, "price"], "PRICE_ADD_CURRENCY_MISMATCH",
                                        "Price list and fixed price currency mismatch.")  # fmt: skip
            if price["variantId"] in seen:
                return _pricing_refused(where, "PRICE_ADD_DUPLICATE_INPUT_FOR_VARIANT",
                                        "Prices to add inputs must be unique by variant id.")  # fmt: skip
            seen.add(price["variantId"])
            kept = prices.get(price["variantId"], {}).get("breaks", [])
            prices[price["variantId"]] = {"price": str(price["price"]["amount"]), "breaks": kept}
        pairs = set()
        for index, brk in enumerate(input["quantityPriceBreaksToAdd"]):
            where = ["input", "quantityPriceBreaksToAdd", str(index)]
            if brk["variantId"] not in variants:
                return _pricing_refused(where, "QUANTITY_PRICE_BREAK_ADD_VARIANT_NOT_FOUND",
                                        "Quantity price break variant not found.")  # fmt: skip
            if brk["price"]["currencyCode"] != price_list["currency"]:
                return _pricing_refused(where, "QUANTITY_PRICE_BREAK_ADD_CURRENCY_MISMATCH",
                                        "Price list and quantity price break currency mismatch.")  # fmt: skip
            if (brk["variantId"], brk["minimumQuantity"]) in pairs:
                return _pricing_refused(
                    where, "QUANTITY_PRICE_BREAK_ADD_DUPLICATE_INPUT_FOR_VARIANT_AND_MIN",
                    "Quantity price breaks to add inputs must be unique by variant id and "
                    "minimum quantity.")  # fmt: skip
            pairs.add((brk["variantId"], brk["minimumQuantity"]))
            if brk["variantId"] not in prices:
                return _pricing_refused(where, "QUANTITY_PRICE_BREAK_ADD_PRICE_LIST_PRICE_NOT_FOUND",
                                        "Quantity price break's fixed price not found.")  # fmt: skip
            breaks = prices[brk["variantId"]]["breaks"]
            breaks.append({"id": f"gid://shopify/QuantityPriceBreak/{len(pairs)}",
                           "minimumQuantity": brk["minimumQuantity"],
                           "price": str(brk["price"]["amount"])})  # fmt: skip
        price_list["prices"] = prices
        touched = sorted(seen | {v for v, _ in pairs} | set(input["pricesToDeleteByVariantId"]))
        return {"productVariants": [{"id": v} for v in touched], "userErrors": []}

    def companies(self, info: Any, first: int, query: str | None = None, **_: Any) -> Any:
        wanted = {v for _, v in _terms(query, {"external_id"})}
        found = [self._company_view(c) for c in self.double.companies.values()
                 if (not wanted or c["externalId"] in wanted)
                 and c["id"] not in self.double.unindexed]  # fmt: skip
        return _page(found, first, None)

    def _company_view(self, company: dict[str, Any]) -> dict[str, Any]:
        def catalogs_of(location: str) -> Any:
            return lambda info, first, **_: {"nodes": [
                self._catalog_view(c) for c in self.double.catalogs.values()
                if location in c["locations"]][:first]}  # fmt: skip

        contacts = [_contact_view(c) for c in company["contacts"]]
        locations = [{"id": loc["id"], "catalogs": catalogs_of(loc["id"])}
                     for loc in company["locations"]]  # fmt: skip
        return {"id": company["id"], "externalId": company["externalId"],
                "defaultRole": {"id": company["roles"][0]["id"]},
                "contactRoles": lambda info, first, **_: {
                    "nodes": [{"id": r["id"], "name": r["name"]} for r in company["roles"]][:first]},
                "contacts": lambda info, first, **_: {"nodes": contacts[:first]},
                "locations": lambda info, first, **_: {"nodes": locations[:first]}}  # fmt: skip

    def companyCreate(self, info: Any, input: dict[str, Any]) -> Any:
        companies = self.double.companies
        fields = input["company"]
        if input.get("companyContact"):
            raise ValueError("the double makes no contacts with companyCreate")
        external = fields.get("externalId")
        if external is not None and any(c["externalId"] == external for c in companies.values()):
            return _refused("company", ["input", "company", "externalId"], "TAKEN",
                            "External Id has already been taken")  # fmt: skip
        if not (fields.get("name") or "").strip():
            return _refused("company", ["input", "company", "name"], "BLANK",
                            "Name can't be blank")  # fmt: skip
        number = 300 + len(companies)
        location = input.get("companyLocation") or {}
        made = {
            "id": f"gid://shopify/Company/{number}", "name": fields["name"], "externalId": external,
            "locations": [{"id": f"gid://shopify/CompanyLocation/{number}",
                           "name": location.get("name") or fields["name"]}],
            "roles": [{"id": f"gid://shopify/CompanyContactRole/{number}1", "name": "Ordering only"},
                      {"id": f"gid://shopify/CompanyContactRole/{number}2", "name": "Location admin"}],
            "contacts": [],
        }  # fmt: skip
        companies[made["id"]] = made
        return {"company": self._company_view(made), "userErrors": []}

    def companyAssignCustomerAsContact(self, info: Any, companyId: str, customerId: str) -> Any:
        company = self.double.companies.get(companyId)
        if company is None or customerId not in self.double.shopify_customers:
            which = "companyId" if company is None else "customerId"
            return _refused("companyContact", [which], "RESOURCE_NOT_FOUND",
                            "Resource requested does not exist.")  # fmt: skip
        if any(c["customer"] == customerId for c in company["contacts"]):
            return _refused("companyContact", ["customerId"], "TAKEN",
                            "Customer is already a contact of the company")  # fmt: skip
        made = {"id": f"{companyId.replace('Company', 'CompanyContact')}{len(company['contacts'])}",
                "customer": customerId, "roles": []}  # fmt: skip
        company["contacts"].append(made)
        return {"companyContact": _contact_view(made), "userErrors": []}

    def companyContactAssignRole(
        self, info: Any, companyContactId: str, companyContactRoleId: str, companyLocationId: str
    ) -> Any:
        """The contact, role and location must be one company's."""
        for company in self.double.companies.values():
            contact = next((c for c in company["contacts"] if c["id"] == companyContactId), None)
            if contact is None:
                continue
            if companyContactRoleId not in {r["id"] for r in company["roles"]}:
                break
            if companyLocationId not in {loc["id"] for loc in company["locations"]}:
                break
            contact["roles"].append((companyContactRoleId, companyLocationId))
            return {"companyContactRoleAssignment": {"id": f"{companyContactId}/role"},
                    "userErrors": []}  # fmt: skip
        return _refused("companyContactRoleAssignment", ["companyContactId"], "RESOURCE_NOT_FOUND",
                        "Resource requested does not exist.")  # fmt: skip

    def catalogContextUpdate(
        self, info: Any, catalogId: str, contextsToAdd: dict[str, Any] | None = None,
        contextsToRemove: dict[str, Any] | None = None,
    ) -> Any:  # fmt: skip
        catalog = self.double.catalogs.get(catalogId)
        if catalog is None:
            return _refused(
                "catalog", ["catalogId"], "CATALOG_NOT_FOUND", "The catalog wasn't found."
            )
        if not contextsToAdd and not contextsToRemove:
            return _refused("catalog", [], "REQUIRES_CONTEXTS_TO_ADD_OR_REMOVE",
                            "Must have `contexts_to_add` or `contexts_to_remove` argument.")  # fmt: skip
        adding = (contextsToAdd or {}).get("companyLocationIds") or []
        removing = (contextsToRemove or {}).get("companyLocationIds") or []
        if (set(adding) | set(removing)) - self._locations():
            return _refused("catalog", ["contextsToAdd"], "COMPANY_LOCATION_NOT_FOUND",
                            "The company location could not be found.")  # fmt: skip
        if set(adding) & set(catalog["locations"]):
            return _refused("catalog", ["contextsToAdd"], "CONTEXT_ALREADY_ASSIGNED_TO_CATALOG",
                            "Context driver already assigned to this catalog.")  # fmt: skip
        catalog["locations"] = [*(x for x in catalog["locations"] if x not in removing), *adding]
        return {"catalog": {"__typename": "CompanyLocationCatalog", "id": catalogId},
                "userErrors": []}  # fmt: skip

    def _locations(self) -> set[str]:
        return {loc["id"] for c in self.double.companies.values() for loc in c["locations"]}

    def inventoryItems(self, info: Any, first: int, query: str | None = None, **_: Any) -> Any:
        skus = _skus_of(query)
        found = [self._item(i) for i, sku in self.double.stock_skus.items() if sku in skus]
        return _page(found, first, None)

    def order(self, info: Any, id: str) -> Any:
        order = self.double.orders.get(id)
        if order is None:
            return None

        def fulfillmentOrders(info: Any, first: int | None = None, **_: Any) -> Any:
            def shown(fo: dict[str, Any]) -> Any:
                return {
                    "id": fo["id"],
                    "status": fo["status"],
                    "assignedLocation": {"location": {"id": fo["location"]}},
                    "lineItems": lambda info, first=None, **_: {"nodes": fo["lineItems"][:first]},
                }

            return {"nodes": [shown(fo) for fo in order["fulfillmentOrders"][:first]]}

        return {"tags": order.setdefault("tags", []), "fulfillmentOrders": fulfillmentOrders}

    def tagsAdd(self, info: Any, id: str, tags: list[str]) -> Any:
        order = self.double.orders.get(id)
        if order is None:
            return {"node": None, "userErrors": [{"field": ["id"], "message": "Order not found"}]}
        too_long = [t for t in tags if len(t) > 40]
        if too_long:
            return {"node": None, "userErrors": [
                {"field": ["tags"], "message": f"Tags are too long: {too_long}"}]}  # fmt: skip
        order.setdefault("tags", []).extend(t for t in tags if t not in order["tags"])
        return {"node": {"id": id}, "userErrors": []}

    def fulfillmentCreate(
        self, info: Any, fulfillment: dict[str, Any], message: str | None = None
    ) -> Any:
        wanted = fulfillment["lineItemsByFulfillmentOrder"]
        found = {
            fo["id"]: (order, fo)
            for order in self.double.orders.values()
            for fo in order["fulfillmentOrders"]
        }

        def refused(field: list[str], why: str) -> Any:
            return {"fulfillment": None, "userErrors": [{"field": field, "message": why}]}

        at = ["fulfillment", "lineItemsByFulfillmentOrder"]
        if not wanted:
            return refused(at, "At least one fulfillment order is required.")
        for n, group in enumerate(wanted):
            if group["fulfillmentOrderId"] not in found:
                return refused([*at, str(n)], "Fulfillment order does not exist.")
        orders_and_fos = [found[g["fulfillmentOrderId"]] for g in wanted]
        if (
            len({id(o) for o, _ in orders_and_fos}) > 1
            or len({fo["location"] for _, fo in orders_and_fos}) > 1
        ):
            return refused(at, "All fulfillment orders must be of one order and one location.")
        taking = []
        for n, (group, (_, fo)) in enumerate(zip(wanted, orders_and_fos, strict=True)):
            if fo["status"] not in ("OPEN", "IN_PROGRESS"):
                return refused([*at, str(n)], f"Fulfillment order is {fo['status']}.")
            items = {item["id"]: item for item in fo["lineItems"]}
            for asked in group.get("fulfillmentOrderLineItems") or [
                {"id": i["id"], "quantity": i["remainingQuantity"]} for i in fo["lineItems"]
            ]:
                item = items.get(asked["id"])
                if item is None or not 0 < asked["quantity"] <= item["remainingQuantity"]:
                    return refused(
                        [*at, str(n)], "Invalid fulfillment order line item quantity requested."
                    )
                taking.append((item, asked["quantity"]))
        for item, quantity in taking:
            item["remainingQuantity"] -= quantity
        for _, fo in orders_and_fos:
            left = any(item["remainingQuantity"] for item in fo["lineItems"])
            fo["status"] = "IN_PROGRESS" if left else "CLOSED"
        order = orders_and_fos[0][0]
        tracking = fulfillment.get("trackingInfo")
        made = {
            "id": f"gid://shopify/Fulfillment/{1000 + len(order['fulfillments'])}",
            "trackingInfo": [{"number": tracking.get("number"), "company": tracking.get("company")}]
            if tracking
            else [],
            "message": message,
        }
        order["fulfillments"].append(made)
        return {"fulfillment": {"id": made["id"]}, "userErrors": []}

    def inventorySetQuantities(self, info: Any, input: dict[str, Any]) -> Any:
        idempotent = info.schema.get_directive("idempotent")
        key = (graphql.get_directive_values(idempotent, info.field_nodes[0], info.variable_values)
               or {}).get("key")  # fmt: skip
        asked = json.dumps(input, sort_keys=True)
        if key is not None and key in self.double.idempotent:
            before, answer = self.double.idempotent[key]
            if before != asked:
                return _set_refused(
                    ["input"],
                    "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                    "The same idempotency key was used with other parameters.",
                )
            return answer
        answer = self._set_quantities(input)
        if key is not None:
            self.double.idempotent[key] = (asked, answer)
        return answer

    def _set_quantities(self, input: dict[str, Any]) -> Any:
        if input["name"] not in ("available", "on_hand"):
            return _set_refused(
                ["input", "name"],
                "INVALID_NAME",
                "The quantity name must be either 'available' or 'on_hand'.",
            )
        if input["reason"] not in _REASONS:
            return _set_refused(
                ["input", "reason"], "INVALID_REASON", "The specified reason is invalid."
            )
        errors, seen = [], set()
        for i, quantity in enumerate(input["quantities"]):
            item, location = quantity["inventoryItemId"], quantity["locationId"]
            at = ["input", "quantities", str(i)]
            levels = self.double.stock.get(item)
            if levels is None:
                errors.append(
                    (
                        [*at, "inventoryItemId"],
                        "INVALID_INVENTORY_ITEM",
                        "The specified inventory item could not be found.",
                    )
                )
            elif location not in levels:
                errors.append(
                    (
                        [*at, "locationId"],
                        "ITEM_NOT_STOCKED_AT_LOCATION",
                        "The specified inventory item is not stocked at the location.",
                    )
                )
            elif quantity["quantity"] < 0:
                errors.append(
                    (
                        [*at, "quantity"],
                        "INVALID_QUANTITY_NEGATIVE",
                        "The quantity can't be negative.",
                    )
                )
            elif "changeFromQuantity" not in quantity:
                errors.append(
                    (
                        at,
                        "COMPARE_QUANTITY_REQUIRED",
                        "changeFromQuantity must be given, or null to opt out.",
                    )
                )
            elif quantity["changeFromQuantity"] not in (None, levels[location]):
                errors.append(
                    (
                        [*at, "changeFromQuantity"],
                        "CHANGE_FROM_QUANTITY_STALE",
                        "The changeFromQuantity value does not match persisted value.",
                    )
                )
            elif (item, location) in seen:
                errors.append(
                    (
                        at,
                        "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
                        "The combination of inventoryItemId and locationId must be unique.",
                    )
                )
            seen.add((item, location))
        if errors:  # nothing is set when any quantity is refused
            return {"inventoryAdjustmentGroup": None, "userErrors": [
                {"field": f, "code": c, "message": m} for f, c, m in errors]}  # fmt: skip
        for quantity in input["quantities"]:
            self.double.stock[quantity["inventoryItemId"]][quantity["locationId"]] = quantity[
                "quantity"
            ]
        group = f"gid://shopify/InventoryAdjustmentGroup/{len(self.double.idempotent) + 1}"
        return {"inventoryAdjustmentGroup": {"id": group}, "userErrors": []}

    def webhookSubscriptionCreate(
        self, info: Any, topic: str, webhookSubscription: dict[str, Any]
    ) -> Any:
        uri = webhookSubscription.get("uri")
        if not uri or not uri.startswith("https://"):
            return {"webhookSubscription": None,
                    "userErrors": [{"field": ["webhookSubscription", "uri"],
                                    "message": "Address is invalid"}]}  # fmt: skip
        node = {"id": f"gid://shopify/WebhookSubscription/{len(self.double.subscriptions) + 1}",
                "topic": topic, "uri": uri}  # fmt: skip
        self.double.subscriptions.append(node)
        return {"webhookSubscription": node, "userErrors": []}


def _terms(query: str | None, fields: set[str]) -> list[tuple[str, str]]:
    """The (field, value) terms of a search query of quoted terms joined by OR (`sku:'…' OR
    sku:'…'`), each of `fields`."""
    term = r"(\w+):'((?:[^'\\]|\\.)*)'"
    if not query:
        return []
    if not re.fullmatch(rf"{term}(?: OR {term})*", query):
        raise ValueError(f"the double searches quoted terms joined by OR only, not {query!r}")
    found = [(f, re.sub(r"\\(.)", r"\1", v)) for f, v in re.findall(term, query)]
    if {f for f, _ in found} - fields:
        raise ValueError(f"the double searches by {sorted(fields)} only, not {query!r}")
    return found


def _skus_of(query: str | None) -> set[str]:
    """The SKUs a search query (`sku:'…' OR sku:'…'`) names."""
    return {value for _, value in _terms(query, {"sku"})}


def _product_view(product: dict[str, Any]) -> dict[str, Any]:
    """A stored product as Shopify's Product object shows it."""
    # A product a test stored without a handle has the one Shopify makes of its title.
    handle = product.get("handle") or _handle_of(product.get("title") or "")
    variants = product["variants"]
    return {**_owner_view(product), "handle": handle,
            "variants": lambda info, first, **_: {"nodes": variants[:first]},
            "variantsCount": {"count": len(variants)}}  # fmt: skip


def _handle_of(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _owner_view(owner: dict[str, Any]) -> dict[str, Any]:
    """A stored product or variant with its metafields as Shopify shows them."""

    def metafields(info: Any, first: int, namespace: str | None = None, **_: Any) -> Any:
        held = (owner.get("metafields") or {}).values()
        return _page([m for m in held if namespace in (None, m["namespace"])], first, None)

    def metafield(info: Any, key: str, namespace: str | None = None) -> Any:
        return (owner.get("metafields") or {}).get((namespace, key))

    return {**owner, "metafields": metafields, "metafield": metafield}


def _metafields_of(given: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Metafields as given to a variant's input, held by namespace and key."""
    return {(m["namespace"], m["key"]): dict(m) for m in given}


def _add_values(product: dict[str, Any], chosen: list[dict[str, Any]]) -> None:
    """The option values a variant chose that its product's options lack, added to them."""
    for option in product.get("productOptions") or []:
        values = option.setdefault("values", [])
        for value in chosen:
            if value["optionName"] == option["name"] and value["name"] not in [
                v["name"] for v in values
            ]:
                values.append({"name": value["name"]})


def _variants_refused(field: list[str], code: str, message: str) -> dict[str, Any]:
    return {"productVariants": None,
            "userErrors": [{"field": field, "code": code, "message": message}]}  # fmt: skip


def _customer_view(customer: dict[str, Any]) -> dict[str, Any]:
    """A stored customer as Shopify's Customer object shows it."""
    shown = [{**a, "countryCodeV2": a.get("countryCode")} for a in customer["addresses"]]
    phone = customer["phone"]
    return {
        "id": customer["id"], "firstName": customer["firstName"], "tags": customer["tags"],
        "defaultEmailAddress": {"emailAddress": customer["email"]} if customer["email"] else None,
        "defaultPhoneNumber": {"phoneNumber": phone} if phone else None,
        "addressesV2": lambda info, first, **_: {"nodes": shown[:first]},
    }  # fmt: skip


def _customer_refused(field: list[str], code: str, message: str) -> dict[str, Any]:
    return {"customer": None, "userErrors": [{"field": field, "code": code, "message": message}]}


_METAFIELDS_LIMIT = 25
"""Metafields per productSet or metafieldsSet."""


def _contact_view(contact: dict[str, Any]) -> dict[str, Any]:
    """A company's stored contact as Shopify's CompanyContact shows it."""
    roles = [{"companyLocation": {"id": location}} for _, location in contact["roles"]]
    return {"id": contact["id"], "customer": {"id": contact["customer"]},
            "roleAssignments": lambda info, first, **_: {"nodes": roles[:first]}}  # fmt: skip


def _refused(payload: str, field: list[str], code: str, message: str) -> dict[str, Any]:
    return {payload: None, "userErrors": [{"field": field, "code": code, "message": message}]}


def _pricing_refused(field: list[str], code: str, message: str) -> dict[str, Any]:
    return {"productVariants": None,
            "userErrors": [{"field": field, "code": code, "message": message}]}  # fmt: skip


def _set_refused(field: list[str], code: str, message: str) -> dict[str, Any]:
    return {"inventoryAdjustmentGroup": None,
            "userErrors": [{"field": field, "code": code, "message": message}]}  # fmt: skip


def _page(items: list[dict[str, Any]], first: int, after: str | None) -> dict[str, Any]:
    if not 1 <= first <= _Shopify._MAX_PAGE:
        raise ValueError(f"first must be between 1 and {_Shopify._MAX_PAGE}")
    start = int(after or 0)
    return {"nodes": items[start : start + first],
            "pageInfo": {"hasNextPage": start + first < len(items), "endCursor": str(start + first),
                         "hasPreviousPage": start > 0, "startCursor": str(start)}}  # fmt: skip


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.strip("'\""))


def _matches(payout: dict[str, Any], query: str) -> bool:
    """Shopify's search syntax as the payouts query uses it: `status:<s>` and
    `issued_at:>=<time>`, all terms to hold."""
    for term in query.split():
        name, _, value = term.partition(":")
        if name == "status":
            held = payout["status"].lower() == value.lower()
        elif name == "issued_at" and value.startswith(">="):
            held = _instant(payout["issuedAt"]) >= _instant(value[2:])
        else:
            raise ValueError(f"the double does not search payouts by {term!r}")
        if not held:
            return False
    return True


def _woo_attributes(given: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A product's attributes as WooCommerce keeps a list given whole: a custom attribute
    (id 0) with the documented defaults."""

    def clean(text: str) -> str:  # wc_clean: tags stripped, whitespace collapsed, trimmed
        return " ".join(re.sub(r"<[^>]*>", "", text).split())

    def options(given: list[str]) -> list[str]:  # kept joined by " | ", read split on "|"
        return [o.strip() for o in " | ".join(clean(o) for o in given).split("|") if o.strip()]

    return [{"id": a.get("id", 0), "name": clean(a.get("name", "")), "position": a.get("position", 0),
             "visible": a.get("visible", False), "variation": a.get("variation", False),
             "options": options(a.get("options") or [])}
            for a in given]  # fmt: skip


def _type_ok(value: Any, kind: str) -> bool:
    return {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "array": isinstance(value, list),
    }.get(kind, True)


class _WooCommerce(_Handler):
    def _authorised(self) -> bool:
        expected = base64.b64encode(f"{WOO_KEY}:{WOO_SECRET}".encode()).decode()
        return self.headers.get("Authorization") == f"Basic {expected}"

    def _check(self, method: str, args: dict[str, Any], route: str = WEBHOOKS_ROUTE) -> str | None:
        schema = woocommerce_route_args(route)[method]
        unknown = set(args) - set(schema)
        if unknown:
            return f"unknown arguments {sorted(unknown)}"
        for name, rules in schema.items():
            if name not in args:
                if rules.get("required"):
                    return f"Missing parameter(s): {name}"
                continue
            if not _type_ok(args[name], rules.get("type", "")):
                return f"{name} is not of type {rules['type']}"
            properties = (rules.get("items") or {}).get("properties")
            for item in args[name] if properties else ():
                if not isinstance(item, dict) or set(item) - set(properties):
                    return f"{name} items have the properties {sorted(properties)} only"
                for key, value in item.items():
                    if not _type_ok(value, properties[key].get("type", "")):
                        return f"{name}[].{key} is not of type {properties[key]['type']}"
            if "enum" in rules and args[name] not in rules["enum"]:
                return f"{name} is not one of {rules['enum']}"
        return None

    def do_GET(self) -> None:
        if self.double.failing:
            return self._refuse(500, "internal_server_error")
        url = urlsplit(self.path)
        if url.path == "/wp-json/wc/v3/products":
            return self._products(url.query)
        product = re.fullmatch(r"/wp-json/wc/v3/products/(\d+)(/variations)?", url.path)
        if product is not None:
            return self._product(int(product.group(1)), bool(product.group(2)), url.query)
        if url.path == "/wp-json/wc/v3/customers":
            return self._customers("GET", url.query)
        notes = re.fullmatch(r"/wp-json/wc/v3/orders/(\d+)/notes", url.path)
        if notes is not None:
            return self._notes("GET", int(notes.group(1)), url.query)
        refunds = re.fullmatch(r"/wp-json/wc/v3/orders/(\d+)/refunds", url.path)
        if url.path != "/wp-json/wc/v3/webhooks" and refunds is None:
            return self._refuse(404, f"no such route {url.path}")
        if not self._authorised():
            return self._refuse(401, "woocommerce_rest_cannot_view")
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        args: dict[str, Any] = {k: int(v) if v.isdigit() else v for k, v in query.items()}
        problem = self._check("GET", args, REFUNDS_ROUTE if refunds else WEBHOOKS_ROUTE)
        if problem:
            return self._refuse(400, problem)
        per_page, page = args.get("per_page", 10), args.get("page", 1)
        if not 1 <= per_page <= 100:
            # WordPress caps a collection's page at 100 items.
            return self._refuse(
                400,
                "rest_invalid_param: per_page must be between 1 (inclusive) and 100 (inclusive)",
            )
        self.double.requests.append(("GET", self.path, None))
        listed = (
            self.double.subscriptions
            if refunds is None
            else self.double.refunds.get(int(refunds.group(1)), [])
        )
        pages = max(1, -(-len(listed) // per_page))
        self._answer(
            200,
            listed[(page - 1) * per_page : page * per_page],
            {"X-WP-Total": str(len(listed)), "X-WP-TotalPages": str(pages)},
        )

    def _products(self, query: str) -> None:
        if not self._authorised():
            return self._refuse(401, "woocommerce_rest_cannot_view")
        args = {k: v[0] for k, v in parse_qs(query).items()}
        problem = self._check("GET", args, PRODUCTS_ROUTE)
        if problem:
            return self._refuse(400, problem)
        self.double.requests.append(("GET", self.path, None))
        # Listed by SKU, variations are found too (WooCommerce's products query then takes
        # both post types); otherwise products alone.
        found = [
            p for p in self.double.products.values()
            if (p["sku"] == args["sku"] if "sku" in args else p.get("type") != "variation")
        ]  # fmt: skip
        self._answer(200, found[:10], {"X-WP-Total": str(len(found))})

    def _product(self, product_id: int, variations: bool, query: str) -> None:
        """One product by id, or the variations of a variable product."""
        if not self._authorised():
            return self._refuse(401, "woocommerce_rest_cannot_view")
        args: dict[str, Any] = {
            k: int(v[0]) if v[0].isdigit() else v[0] for k, v in parse_qs(query).items()
        }
        problem = self._check("GET", args, VARIATIONS_ROUTE if variations else PRODUCT_ROUTE)
        if problem:
            return self._refuse(400, problem)
        product = self.double.products.get(product_id)
        if product is None or product.get("type") == "variation":
            return self._refuse(404, "woocommerce_rest_product_invalid_id: Invalid ID.")
        self.double.requests.append(("GET", self.path, None))
        if not variations:
            return self._answer(200, product)
        found = [v for v in self.double.products.values() if v.get("parent_id") == product_id]
        per_page, page = args.get("per_page", 10), args.get("page", 1)
        self._answer(200, found[(page - 1) * per_page : page * per_page],
                     {"X-WP-Total": str(len(found))})  # fmt: skip

    def _customers(self, method: str, query: str = "", customer_id: int | None = None) -> None:
        """Customers listed (`email` exactly, `search` in the email or names), created (an
        email no other customer has; WooCommerce makes the username) or updated (PUT)."""
        if not self._authorised():
            return self._refuse(401, "woocommerce_rest_cannot_view")
        args = {k: v[0] for k, v in parse_qs(query).items()} if method == "GET" else self._body()
        if method == "GET" and "per_page" in args:
            args["per_page"] = int(args["per_page"])
        if args.get("role", "all") != "all":
            return self._refuse(400, "the double lists customers of every role only")
        route = CUSTOMERS_ROUTE if customer_id is None else CUSTOMER_ROUTE
        problem = self._check(method, args, route)
        if problem:
            return self._refuse(400, problem)
        self.double.requests.append((method, self.path, None if method == "GET" else args))
        customers = self.double.customers
        if method == "GET":
            search = str(args.get("search", "")).lower()
            found = [
                c for c in customers.values()
                if c["email"] == args.get("email", c["email"])
                and search in f"{c['email']} {c['first_name']} {c['last_name']}".lower()
            ]  # fmt: skip
            return self._answer(200, found[: args.get("per_page", 10)])
        email = args.get("email")
        if any(c["email"] == email and c["id"] != customer_id for c in customers.values()):
            return self._refuse(
                400,
                "registration-error-email-exists: An account is already registered with your "
                "email address.",
            )
        if customer_id is None:
            made = {"id": 2000 + len(customers), "username": str(email).split("@")[0],
                    "first_name": "", "last_name": "", "billing": {}, "shipping": {},
                    "meta_data": [], **args}  # fmt: skip
            customers[made["id"]] = made
            return self._answer(201, made)
        customer = customers.get(customer_id)
        if customer is None:
            return self._refuse(404, "woocommerce_rest_invalid_id: Invalid resource ID.")
        for part in ("billing", "shipping"):
            if part in args:
                args[part] = {**customer[part], **args[part]}
        if "meta_data" in args:
            # WooCommerce replaces the entries of the keys given, and keeps the others.
            keys = {m["key"] for m in args["meta_data"]}
            args["meta_data"] = [m for m in customer["meta_data"] if m["key"] not in keys] + args[
                "meta_data"
            ]
        customer.update(args)
        self._answer(200, customer)

    def _notes(self, method: str, order_id: int, query: str = "") -> None:
        if not self._authorised():
            return self._refuse(401, "woocommerce_rest_cannot_view")
        args = {k: v[0] for k, v in parse_qs(query).items()} if method == "GET" else self._body()
        problem = self._check(method, args, NOTES_ROUTE)
        if problem:
            return self._refuse(400, problem)
        notes = self.double.notes.get(order_id)
        if notes is None:
            return self._refuse(404, "woocommerce_rest_order_invalid_id: Invalid order ID.")
        self.double.requests.append((method, self.path, None if method == "GET" else args))
        if method == "GET":
            kind = args.get("type", "any")
            shown = [
                n for n in notes if kind == "any" or n["customer_note"] == (kind == "customer")
            ]
            return self._answer(200, shown)
        note = {"id": 500 + sum(len(n) for n in self.double.notes.values()),
                "author": "erpbridge", "date_created": "2026-12-07T01:00:00",
                "note": args["note"], "customer_note": bool(args.get("customer_note"))}  # fmt: skip
        notes.append(note)
        self._answer(201, note)

    def _batch(self, parent_id: int | None = None) -> None:
        """Products created and updated, or the variations of the variable product
        `parent_id` (their arguments those of the variations' route)."""
        if not self._authorised():
            return self._refuse(401, "woocommerce_rest_cannot_batch")
        route = PRODUCTS_ROUTE
        if parent_id is not None:
            route = VARIATIONS_BATCH_ROUTE
            parent = self.double.products.get(parent_id)
            if parent is None or parent.get("type") != "variable":
                return self._refuse(404, "woocommerce_rest_product_invalid_id: Invalid ID.")
        body = self._body()
        if not isinstance(body, dict) or set(body) - {"create", "update", "delete"}:
            return self._refuse(400, f"not a batch request: {body!r:.100}")
        if sum(len(body.get(k, [])) for k in ("create", "update", "delete")) > 100:
            # WooCommerce's batch limit (woocommerce_rest_batch_items_limit), as it answers it.
            return self._refuse(
                413,
                "woocommerce_rest_request_entity_too_large: Unable to accept more than 100 "
                "items for this request.",
            )
        if body.get("delete"):
            return self._refuse(400, "the double creates and updates only")
        for item in body.get("create", []):
            problem = self._check_item(item, route)
            if problem:
                return self._refuse(400, problem)
        for item in body.get("update", []):
            fields = {k: v for k, v in item.items() if k != "id"}
            problem = self._check_item(fields, route) or (
                None if isinstance(item.get("id"), int) else "update items need an integer id"
            )
            if problem:
                return self._refuse(400, problem)
        self.double.requests.append(("POST", self.path, body))
        created = []
        for item in body.get("create", []):
            if any(p["sku"] == item.get("sku") for p in self.double.products.values()):
                # WooCommerce keeps SKUs unique, as it answers a second one.
                created.append({"id": 0, "error": {
                    "code": "product_invalid_sku", "message": "Invalid or duplicated SKU.",
                    "data": {"status": 400}}})  # fmt: skip
                continue
            product = {"id": 1000 + len(self.double.products), "status": "publish", **item}
            if parent_id is not None:
                product |= {"type": "variation", "parent_id": parent_id,
                            "status": item.get("status", "publish")}  # fmt: skip
            self._store(product, item)
            self.double.products[product["id"]] = product
            created.append(dict(product))
        answered = []
        for item in body.get("update", []):
            product = self.double.products.get(item["id"])
            if product is None or product.get("parent_id") != parent_id:
                answered.append({"id": item["id"], "error": {
                    "code": "woocommerce_rest_product_invalid_id", "message": "Invalid ID.",
                    "data": {"status": 400}}})  # fmt: skip
                continue
            product.update({k: v for k, v in item.items() if k not in ("id", "meta_data")})
            self._store(product, item)
            answered.append(dict(product))
        self._answer(200, {"create": created, "update": answered})

    def _check_item(self, item: dict[str, Any], route: str) -> str | None:
        if route != VARIATIONS_BATCH_ROUTE:
            return self._check("POST", item, route)
        writable = variation_properties()
        unknown = set(item) - set(writable)
        if unknown:
            return f"a variation has no writable {sorted(unknown)}"
        for name, value in item.items():
            if not _type_ok(value, writable[name]):
                return f"{name} is not of type {writable[name]}"
        if item.get("status", "publish") not in ("draft", "pending", "private", "publish"):
            return f"status is not one of draft, pending, private, publish: {item['status']!r}"
        return None

    @staticmethod
    def _store(product: dict[str, Any], item: dict[str, Any]) -> None:
        """A product's attributes and meta data as WooCommerce keeps what was given: a
        variation's attributes name their option; meta data replaced by key, ids given."""
        if "attributes" in item:
            product["attributes"] = (
                [{"id": 0, "name": a.get("name", ""), "option": a.get("option", "")}
                 for a in item["attributes"]]
                if product.get("type") == "variation"
                else _woo_attributes(item["attributes"])
            )  # fmt: skip
        elif "attributes" not in product:
            product["attributes"] = []
        if "meta_data" in item:
            keys = {m["key"] for m in item["meta_data"]}
            kept = [m for m in product.get("meta_data") or [] if m["key"] not in keys]
            product["meta_data"] = kept + [
                {"id": 9000 + i, **m} for i, m in enumerate(item["meta_data"])
            ]

    def do_POST(self) -> None:
        if self.double.failing:
            return self._refuse(503, "Service Unavailable")
        if self.path == "/wp-json/wc/v3/products/batch":
            return self._batch()
        variations = re.fullmatch(r"/wp-json/wc/v3/products/(\d+)/variations/batch", self.path)
        if variations is not None:
            return self._batch(int(variations.group(1)))
        if self.path == "/wp-json/wc/v3/customers":
            return self._customers("POST")
        notes = re.fullmatch(r"/wp-json/wc/v3/orders/(\d+)/notes", self.path)
        if notes is not None:
            return self._notes("POST", int(notes.group(1)))
        if self.path != "/wp-json/wc/v3/webhooks":
            return self._refuse(404, f"no such route {self.path}")
        if not self._authorised():
            return self._refuse(401, "woocommerce_rest_cannot_create")
        body = self._body()
        problem = self._check("POST", body)
        if problem:
            return self._refuse(400, problem)
        self.double.requests.append(("POST", self.path, body))
        hook = {"id": 100 + len(self.double.subscriptions), "name": body.get("name", ""),
                "status": body.get("status", "active"), "topic": body["topic"],
                "delivery_url": body["delivery_url"]}  # fmt: skip
        self.double.subscriptions.append(hook)
        self._answer(201, hook)

    def do_PUT(self) -> None:
        if self.double.failing:
            return self._refuse(503, "Service Unavailable")
        customer = re.fullmatch(r"/wp-json/wc/v3/customers/(\d+)", self.path)
        if customer is None:
            return self._refuse(404, f"no such route {self.path}")
        return self._customers("PUT", customer_id=int(customer.group(1)))


class _StripeApi(_Handler):
    _PARAMS = frozenset({"payout", "limit", "starting_after", "expand[]"})

    def do_GET(self) -> None:
        if self.double.failing:
            return self._refuse(500, "api_error")
        url = urlsplit(self.path)
        if url.path != "/v1/balance_transactions":
            return self._refuse(404, f"Unrecognized request URL (GET: {url.path})")
        expected = base64.b64encode(f"{STRIPE_KEY}:".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            return self._refuse(401, "Invalid API Key provided")
        query = parse_qs(url.query)
        if set(query) - self._PARAMS or "payout" not in query:
            return self._refuse(400, f"invalid parameters {sorted(query)}")
        limit = int(query.get("limit", ["10"])[0])
        if not 1 <= limit <= 100:
            return self._refuse(400, "limit must be between 1 and 100")
        self.double.requests.append(("GET", self.path, None))
        listed = self.double.transactions.get(query["payout"][0], [])
        after = query.get("starting_after", [None])[0]
        start = next((i + 1 for i, t in enumerate(listed) if t["id"] == after), 0)
        page = listed[start : start + limit]
        if query.get("expand[]") != ["data.source"]:
            page = [t | {"source": t["source"]["id"]} for t in page]
        self._answer(200, {"object": "list", "url": "/v1/balance_transactions",
                           "has_more": start + limit < len(listed), "data": page})  # fmt: skip


class _AdyenReports(_Handler):
    """Adyen's report download: GET /reports/download/MerchantAccount/<account>/<file> with
    the report user's basic authentication, the file as text/csv."""

    def do_GET(self) -> None:
        if self.double.failing:
            return self._refuse(500, "internal error")
        expected = base64.b64encode(f"{ADYEN_REPORT_USER}:{ADYEN_REPORT_PASSWORD}".encode())
        if self.headers.get("Authorization") != f"Basic {expected.decode()}":
            return self._refuse(401, "HTTP ERROR 401 Unauthorized")
        if not re.fullmatch(r"/reports/download/MerchantAccount/[^/]+/[^/]+", self.path):
            return self._refuse(404, f"no such report path {self.path}")
        report = self.double.reports.get(self.path)
        if report is None:
            return self._refuse(404, f"no report {self.path}")
        self.double.requests.append(("GET", self.path, None))
        data = report.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@contextmanager
def _serving(handler: type[_Handler]) -> Iterator[Double]:
    double = Double()
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Bound", (handler,), {"double": double}))
    double.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()


def shopify_admin() -> Any:
    return _serving(_Shopify)


def woocommerce_admin() -> Any:
    return _serving(_WooCommerce)


def stripe_api() -> Any:
    return _serving(_StripeApi)


def adyen_reports() -> Any:
    return _serving(_AdyenReports)
