"""Stripe's `Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>...]`, checked by Stripe's own
library (`stripe.WebhookSignature.verify_header`): v1 is HMAC-SHA256 of "<t>.<raw body>"
with the endpoint's secret, compared in constant time; Stripe sends one v1 per live secret
while one is rolled, and the route may hold several secrets too. A signature older than
the tolerance is refused, so a captured request cannot be replayed later."""

from __future__ import annotations

from collections.abc import Sequence

import stripe

_REASONS = (
    ("Unable to extract timestamp", "malformed"),
    ("No signatures found with expected scheme", "malformed"),
    ("Timestamp outside the tolerance zone", "expired"),
)
"""The library's messages, by the reason erpbridge counts; any other is a mismatch."""
_RANK = {"mismatch": 0, "malformed": 1, "expired": 2}
"""With several secrets, the most telling reason: a signature made with one of them that
is too old is expired, not a mismatch of the others."""


def signature_problem(
    body: bytes, header: str | None, secrets: Sequence[bytes], tolerance: float
) -> str | None:
    """None when `header` signs `body` with one of `secrets` within `tolerance` seconds;
    otherwise why not: "missing", "malformed", "mismatch" or "expired"."""
    if not header:
        return "missing"
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        # Stripe signs the body as text; bytes that are not UTF-8 are nothing it sent.
        return "mismatch"
    problem = "mismatch"
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret.decode(), tolerance)
        except stripe.SignatureVerificationError as error:
            reason = _reason(str(error))
            problem = max(problem, reason, key=_RANK.__getitem__)
        else:
            return None
    return problem


def _reason(message: str) -> str:
    return next((reason for prefix, reason in _REASONS if prefix in message), "mismatch")
