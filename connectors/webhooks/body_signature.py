"""The signature Shopify and WooCommerce send: base64 of HMAC-SHA256 of the raw body.

Checked against each of the route's secrets (several during a rotation), each in constant
time, before anything reads the body."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence


def body_signed(body: bytes, signature: str | None, secrets: Sequence[bytes]) -> bool:
    if not signature:
        return False
    given = signature.strip().encode("utf-8", "replace")
    found = False
    for secret in secrets:
        expected = base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest())
        # Every secret is tried, so the time taken says nothing about which one matched.
        found |= hmac.compare_digest(expected, given)
    return found
