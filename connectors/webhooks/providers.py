"""What the service needs of each provider: how a request proves it came from the provider,
and which input events its body makes. The mappings themselves are the pure modules of the
provider packages; this adds the provider's HTTP conventions (headers, answers)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from connectors.webhooks.adyen import mapping as adyen
from connectors.webhooks.adyen import settlement
from connectors.webhooks.adyen.reports import download
from connectors.webhooks.adyen.signature import item_signed
from connectors.webhooks.amounts import timestamp
from connectors.webhooks.body_signature import body_signed
from connectors.webhooks.inputs import BadDelivery, Input, UnknownTopic, Unmappable
from connectors.webhooks.references import References
from connectors.webhooks.shopify import mapping as shopify
from connectors.webhooks.stripe import mapping as stripe
from connectors.webhooks.stripe.balance import API_URL, payout_transactions
from connectors.webhooks.stripe.signature import signature_problem
from connectors.webhooks.woocommerce import mapping as woocommerce
from connectors.webhooks.woocommerce.refunds import order_refunds


@dataclass(frozen=True)
class Request:
    headers: Mapping[str, str]
    """Case-insensitive, as aiohttp gives them."""
    body: bytes


class Unauthentic(Exception):
    """A signature inside the body (Adyen's) that does not verify: a 401 like any other."""


@dataclass(frozen=True)
class Api:
    """The provider's own API, for what a webhook does not carry (a Stripe payout's
    transactions, a WooCommerce order's refunds): the route's admin_url and its
    ERPBRIDGE_WEBHOOK_ADMIN_TOKENS entry."""

    client: httpx.AsyncClient
    url: str | None
    key: str | None


async def _nothing(request: Request, document: Any, api: Api) -> Any:
    return None


@dataclass(frozen=True)
class Provider:
    name: str
    problem: Callable[[Request, Sequence[bytes], float], str | None]
    """Why the raw request is not authentic (None: it is), before its body is parsed;
    given the route's secrets and the timestamp tolerance in seconds."""
    inputs: Callable[[Request, Any, References, Sequence[bytes], Any], list[Input]]
    """The input events of the parsed body and what `fetch` read (UnknownTopic,
    Unmappable, BadDelivery, Unauthentic for what there are none)."""
    fetch: Callable[[Request, Any, Api], Awaitable[Any]] = _nothing
    """What the mapping of the parsed body needs from the provider's API (Unavailable
    when it cannot be read now and the provider re-sends)."""
    keys: Callable[[Sequence[bytes]], tuple[bytes, ...]] = tuple
    """The route's secrets as the check uses them (Adyen's are hex)."""
    accepted: bytes = b'{"status": "accepted"}'
    accepted_type: str = "application/json"
    is_ping: Callable[[Request], bool] = lambda request: False
    """A request the provider sends to test the URL: answered 200, nothing published."""


def _header(request: Request, name: str) -> str:
    value = request.headers.get(name)
    if not value:
        raise BadDelivery(f"the {name} header is missing")
    return value


def _body_problem(header: str) -> Callable[[Request, Sequence[bytes], float], str | None]:
    def problem(request: Request, secrets: Sequence[bytes], tolerance: float) -> str | None:
        signature = request.headers.get(header)
        if not signature:
            return "missing"
        return None if body_signed(request.body, signature, secrets) else "mismatch"

    return problem


def _shopify(
    request: Request, document: Any, references: References, keys: Sequence[bytes], fetched: Any
) -> list[Input]:
    topic = _header(request, "X-Shopify-Topic")
    return shopify.inputs(topic, _header(request, "X-Shopify-Event-Id"), document, references)


def _woocommerce(
    request: Request, document: Any, references: References, keys: Sequence[bytes], fetched: Any
) -> list[Input]:
    return woocommerce.inputs(_header(request, "X-WC-Webhook-Topic"), document, references, fetched)


async def _woocommerce_fetch(request: Request, document: Any, api: Api) -> Any:
    order_id = woocommerce.refunded_order(request.headers.get("X-WC-Webhook-Topic"), document)
    if order_id is None:
        return None
    if not (api.url and api.key):
        raise Unmappable(
            "no-api-key",
            f"order {order_id}: the route has no admin_url or WooCommerce API key "
            "(ERPBRIDGE_WEBHOOK_ADMIN_TOKENS) to read the lines of its refunds",
        )
    return await order_refunds(api.client, api.url, api.key, order_id)


def _woocommerce_ping(request: Request) -> bool:
    # On creating a webhook WooCommerce posts `webhook_id=<id>`, form-encoded and unsigned.
    return "X-WC-Webhook-Topic" not in request.headers and request.body.startswith(b"webhook_id=")


def _stripe_problem(request: Request, secrets: Sequence[bytes], tolerance: float) -> str | None:
    return signature_problem(
        request.body, request.headers.get("Stripe-Signature"), secrets, tolerance
    )


def _stripe(
    request: Request, document: Any, references: References, keys: Sequence[bytes], fetched: Any
) -> list[Input]:
    return stripe.inputs(document, references, fetched)


async def _stripe_fetch(request: Request, document: Any, api: Api) -> Any:
    payout = stripe.paid_payout(document)
    if payout is None:
        return None
    if not api.key:
        raise Unmappable(
            "no-api-key",
            f"payout {payout}: the route has no Stripe API key (ERPBRIDGE_WEBHOOK_ADMIN_TOKENS) "
            "to read the payments it settles",
        )
    return await payout_transactions(api.client, api.url or API_URL, api.key, payout)


def _adyen_items(document: Any) -> list[Any]:
    items = document.get("notificationItems") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        raise BadDelivery("the body has no notificationItems")
    return [
        entry.get("NotificationRequestItem") if isinstance(entry, dict) else None for entry in items
    ]


def _unsigned_report(item: Any) -> bool:
    """A settlement report's announcement without a signature (Adyen may not sign these):
    taken, since it only chooses which of the route's own reports is read from Adyen."""
    additional = item.get("additionalData") if isinstance(item, dict) else None
    return (
        isinstance(item, dict)
        and settlement.report_file(item) is not None
        and not (isinstance(additional, dict) and additional.get("hmacSignature"))
    )


def _adyen(
    request: Request, document: Any, references: References, keys: Sequence[bytes], fetched: Any
) -> list[Input]:
    wrapped = _adyen_items(document)
    # Every item is checked before any is mapped: one forged item refuses the request.
    if not all(item_signed(item, keys) or _unsigned_report(item) for item in wrapped):
        raise Unauthentic("an item's hmacSignature does not verify")
    found: list[Input] = []
    unknown: UnknownTopic | None = None
    for item in wrapped:
        assert isinstance(item, dict)  # checked above
        report = settlement.report_file(item)
        try:
            if report is None:
                found += adyen.inputs(item)
            else:
                occurred_at = timestamp(item.get("eventDate"), "eventDate")
                found += settlement.settlements(fetched[report], report, occurred_at)
        except UnknownTopic as error:
            unknown = error
    if not found and unknown is not None:
        raise unknown
    return found


async def _adyen_fetch(request: Request, document: Any, api: Api) -> Any:
    """The settlement reports the notification announces, by file name."""
    reports = [
        name
        for item in _adyen_items(document)
        if isinstance(item, dict) and (name := settlement.report_file(item)) is not None
    ]
    if not reports:
        return None
    if not (api.url and api.key):
        raise Unmappable(
            "no-api-key",
            f"{reports[0]}: the route has no admin_url (the merchant account's report folder) "
            "or report user (ERPBRIDGE_WEBHOOK_ADMIN_TOKENS) to read it",
        )
    return {name: await download(api.client, api.url, api.key, name) for name in reports}


def _hex_keys(secrets: Sequence[bytes]) -> tuple[bytes, ...]:
    """Adyen's keys as they are (hex text, what its library takes); one that is not hex is
    refused when the route is set up."""
    for secret in secrets:
        bytes.fromhex(secret.decode())
    return tuple(secrets)


PROVIDERS: dict[str, Provider] = {
    "shopify": Provider("shopify", _body_problem("X-Shopify-Hmac-Sha256"), _shopify),
    "woocommerce": Provider(
        "woocommerce",
        _body_problem("X-WC-Webhook-Signature"),
        _woocommerce,
        fetch=_woocommerce_fetch,
        is_ping=_woocommerce_ping,
    ),
    "stripe": Provider("stripe", _stripe_problem, _stripe, fetch=_stripe_fetch),
    "adyen": Provider(
        "adyen",
        # Adyen signs each item inside the body: _adyen checks them before mapping any.
        lambda request, secrets, tolerance: None,
        _adyen,
        fetch=_adyen_fetch,
        keys=_hex_keys,
        # What Adyen expects, or it keeps re-sending.
        accepted=b"[accepted]",
        accepted_type="text/plain",
    ),
}
