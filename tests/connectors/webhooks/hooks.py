"""Signed webhook requests as each provider sends them, to a running webhooks service, and
what the service stored on the broker."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from streams.contracts import deadletter
from streams.contracts.codec import Codec
from streams.contracts.topics import TopicCatalog, spec
from streams.ops.settings import Settings
from tests.streams.topology.agents.pipeline import read_all
from tests.support import STORE

CODEC = Codec(STORE)

SHOPIFY_SECRETS = ["shpss_current", "shpss_previous"]
"""Two at once: the app's secret is being rotated."""
WOO_SECRET = "woo-webhook-secret"
STRIPE_SECRETS = ["whsec_current", "whsec_previous"]
ADYEN_KEY = "74F490DD33F7327BAECC88B2947C011FC02D014A473AAA33A8EC93E4DC069174"
"""The key Adyen's library signed its sample notifications with (its test_util.py)."""

ROUTES: dict[str, Any] = {
    "main": {"provider": "shopify", "warehouses": {"905684977": "WH-EAST"},
             "skus": {"808950810": "IPOD2008GREEN"}},
    "woo": {"provider": "woocommerce", "warehouses": {"default": "WH-WEST"},
            "skus": {"93": "WOO-SINGLE-1"}},
    "payments": {"provider": "stripe"},
    "eu": {"provider": "adyen"},
}  # fmt: skip
SECRETS = {"main": SHOPIFY_SECRETS, "woo": [WOO_SECRET], "payments": STRIPE_SECRETS,
           "eu": [ADYEN_KEY]}  # fmt: skip


def body_of(document: Any) -> bytes:
    """A JSON body; the samples' few non-integer numbers (Shopify's tax rate 0.06) are
    written as strings, which the mappings read alike, so no float ever carries them."""
    return json.dumps(document, default=str).encode()


def b64_hmac(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def stripe_signature(secret: str, body: bytes, at: float | None = None) -> str:
    t = int(time.time() if at is None else at)
    v1 = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={v1}"


class Hooks:
    """Posts to one running service."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.client = httpx.Client(base_url=self.base, timeout=30)

    def post(
        self,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        content_type: str = "application/json",
    ) -> httpx.Response:
        return self.client.post(
            path, content=body, headers={"Content-Type": content_type, **headers}
        )

    def shopify(
        self,
        topic: str,
        document: Any,
        event_id: str | None = None,
        secret: str = SHOPIFY_SECRETS[0],
    ) -> httpx.Response:
        body = body_of(document)
        return self.post(
            "/webhooks/shopify/main",
            body,
            {
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": b64_hmac(secret, body),
                "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
                "X-Shopify-Shop-Domain": "johns-apparel.myshopify.com",
            },
        )

    def woocommerce(self, topic: str, document: Any, secret: str = WOO_SECRET) -> httpx.Response:
        body = body_of(document)
        return self.post(
            "/webhooks/woocommerce/woo",
            body,
            {
                "X-WC-Webhook-Topic": topic,
                "X-WC-Webhook-Signature": b64_hmac(secret, body),
                "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex,
            },
        )

    def stripe(
        self, event: Any, secret: str = STRIPE_SECRETS[0], at: float | None = None
    ) -> httpx.Response:
        body = body_of(event)
        return self.post(
            "/webhooks/stripe/payments",
            body,
            {"Stripe-Signature": stripe_signature(secret, body, at)},
        )

    def adyen(self, notification: Any) -> httpx.Response:
        return self.post("/webhooks/adyen/eu", body_of(notification), {})


def stored(
    settings: Settings, topics: TopicCatalog, topic: str
) -> list[tuple[str, dict[str, Any]]]:
    """(key, datum) of every record on an input topic."""
    schema = spec(topic).value_schema
    return [
        (m.key().decode(), CODEC.decode(m.value(), expected=schema).datum)
        for m in read_all(settings, topics.physical(topic), timeout=30)
    ]


def dead_letters(settings: Settings, topics: TopicCatalog, topic: str) -> list[dict[str, Any]]:
    """What webhooks.dlq holds: the body, the request's headers and why."""
    found = []
    for m in read_all(settings, topics.physical(topic), timeout=30):
        headers = [(k, v or b"") for k, v in m.headers() or []]
        found.append(
            {
                "body": m.value(),
                **deadletter.describe(headers),
                "headers": dict(deadletter.original_headers(headers)),
            }
        )
    return found
