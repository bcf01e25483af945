"""The vendors' own sample payloads (tests/fixtures/<provider>/, see the README there),
loaded as the service parses bodies: JSON numbers as Decimal, never float."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from streams.contracts.jsonlines import to_datum
from streams.contracts.topics import spec
from streams.ops.settings import REPO_ROOT
from tests.support import STORE

FIXTURES = REPO_ROOT / "tests" / "fixtures"


def parse(text: str | bytes) -> Any:
    return json.loads(text, parse_float=Decimal)


def shopify(name: str) -> dict[str, Any]:
    """A Shopify REST fixture without its root key: the webhook body of its topic."""
    (body,) = parse((FIXTURES / "shopify" / name).read_text()).values()
    assert isinstance(body, dict)
    return body


def shopify_transaction() -> dict[str, Any]:
    (transaction,) = parse((FIXTURES / "shopify" / "transactions.json").read_text())
    assert isinstance(transaction, dict)
    return transaction


def stripe(resource: str) -> dict[str, Any]:
    resources = parse((FIXTURES / "stripe" / "fixtures3-subset.json").read_text())["resources"]
    found: dict[str, Any] = resources[resource]
    return found


def stripe_event(
    kind: str, obj: dict[str, Any], event_id: str = "evt_1Pgc76B7WZ01zgkWwyRHS12y"
) -> dict[str, Any]:
    """A Stripe event envelope around `obj`, as webhooks deliver one (fixture "event"'s
    id and time, `type` and `data.object` replaced)."""
    event = stripe("event")
    return {**event, "id": event_id, "type": kind, "data": {"object": obj}}


def adyen(name: str) -> dict[str, Any]:
    item: dict[str, Any] = parse((FIXTURES / "adyen" / name).read_text())
    return item


def adyen_notification(*items: dict[str, Any]) -> dict[str, Any]:
    """Adyen's request body around notification items."""
    return {"live": "false", "notificationItems": [{"NotificationRequestItem": i} for i in items]}


def woocommerce(page: str, heading: str) -> Any:
    """The JSON example following `heading` in one of WooCommerce's documentation pages."""
    text = (FIXTURES / "woocommerce" / page).read_text()
    after = text[text.index(heading) :]
    match = re.search(r"```json\n(.*?)```", after, re.S)
    assert match is not None, f"no JSON example after {heading!r} in {page}"
    return parse(match.group(1))


def woocommerce_listed_order(order_id: int) -> dict[str, Any]:
    """One order of the "List all orders" example (723 is completed, with two refunds)."""
    (order,) = [
        o for o in woocommerce("_orders.md", "## List all orders ##") if o["id"] == order_id
    ]
    assert isinstance(order, dict)
    return order


def assert_fits_schema(record: dict[str, Any], topic: str) -> None:
    """The expected record is a valid value of its topic's schema."""
    schema_name = spec(topic).value_schema
    assert schema_name is not None
    to_datum(STORE.current(schema_name), record)
