"""Stripe's `Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>...]`: v1 is HMAC-SHA256 of
"<t>.<raw body>" with the endpoint's secret; Stripe sends one v1 per live secret while one
is rolled, and the route may hold several secrets too. A signature older (or newer) than
the tolerance is refused, so a captured request cannot be replayed later."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence


def signature_problem(
    body: bytes, header: str | None, secrets: Sequence[bytes], now: float, tolerance: float
) -> str | None:
    """None when `header` signs `body` with one of `secrets` within `tolerance` seconds of
    `now`; otherwise why not: "missing", "malformed", "mismatch" or "expired"."""
    if not header:
        return "missing"
    timestamps, signatures = [], []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            timestamps.append(value)
        elif name == "v1":
            signatures.append(value.encode("ascii", "replace"))
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not signatures:
        return "malformed"
    signed = timestamps[0].encode() + b"." + body
    found = False
    for secret in secrets:
        expected = hmac.new(secret, signed, hashlib.sha256).hexdigest().encode()
        for given in signatures:
            found |= hmac.compare_digest(expected, given)
    if not found:
        return "mismatch"
    if abs(now - int(timestamps[0])) > tolerance:
        return "expired"
    return None
