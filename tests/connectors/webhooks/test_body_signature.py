"""Shopify's and WooCommerce's signature: base64 HMAC-SHA256 of the raw body."""

from __future__ import annotations

import base64
import hashlib
import hmac

from connectors.webhooks.body_signature import body_signed

BODY = b'{"id": 450789469}'


def sign(body: bytes, secret: bytes) -> str:
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def test_the_right_secret_among_several_verifies() -> None:
    assert body_signed(BODY, sign(BODY, b"new"), [b"new"])
    assert body_signed(BODY, sign(BODY, b"old"), [b"new", b"old"])


def test_wrong_missing_or_garbled_signatures_do_not() -> None:
    assert not body_signed(BODY, sign(BODY, b"other"), [b"new", b"old"])
    assert not body_signed(BODY + b" ", sign(BODY, b"new"), [b"new"])
    assert not body_signed(BODY, None, [b"new"])
    assert not body_signed(BODY, "", [b"new"])
    assert not body_signed(BODY, "ünicode", [b"new"])
    assert not body_signed(BODY, sign(BODY, b"new"), [])
