"""Stripe-Signature: t=…,v1=… over "t.body", several v1 and several secrets, a tolerance
(Stripe's library checks it against the clock)."""

from __future__ import annotations

import hashlib
import hmac
import time

from connectors.webhooks.stripe.signature import signature_problem

BODY = b'{"id": "evt_1", "type": "payment_intent.succeeded"}'
SECRET, OLD, OTHER = b"whsec_new", b"whsec_old", b"whsec_other"


def header(t: int, *secrets: bytes, body: bytes = BODY) -> str:
    signed = f"{t}.".encode() + body
    return ",".join(
        [f"t={t}", *(f"v1={hmac.new(s, signed, hashlib.sha256).hexdigest()}" for s in secrets)]
    )


def now() -> int:
    """Stripe's library checks the time against the clock when it runs, so tests sign now."""
    return int(time.time())


def check(value: str | None, secrets: tuple[bytes, ...] = (SECRET,)) -> str | None:
    return signature_problem(BODY, value, secrets, 300)


def test_a_fresh_signature_verifies() -> None:
    assert check(header(now(), SECRET)) is None


def test_any_v1_with_any_secret_verifies_while_secrets_roll() -> None:
    assert check(header(now(), OTHER, OLD), secrets=(SECRET, OLD)) is None
    assert check(header(now(), SECRET, OTHER), secrets=(OLD, SECRET)) is None


def test_wrong_missing_malformed_and_expired() -> None:
    assert check(header(now(), OTHER)) == "mismatch"
    assert check(header(now(), SECRET, body=BODY + b" ")) == "mismatch"
    assert check(None) == "missing"
    assert check("v1=abc") == "malformed"
    assert check(f"t=soon,v1={'0' * 64}") == "malformed"
    assert check(header(now() - 310, SECRET)) == "expired"
    assert check(header(now() - 310, SECRET), secrets=(OTHER, SECRET)) == "expired"
    assert check(header(now() - 290, SECRET)) is None
