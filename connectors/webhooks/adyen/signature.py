"""Adyen's HMAC of a standard notification item: base64 of HMAC-SHA256, with the hex key
from the Customer Area, over the item's pspReference, originalReference,
merchantAccountCode, merchantReference, amount value, amount currency, eventCode and
success joined by ":" (absent fields empty). It travels inside the item, in
additionalData.hmacSignature, so it is checked on the parsed item, before any mapping."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

_FIELDS = ("pspReference", "originalReference", "merchantAccountCode", "merchantReference")


def item_signed(item: Any, keys: Sequence[bytes]) -> bool:
    """Whether `item` carries a signature one of `keys` (raw key bytes) made."""
    if not isinstance(item, dict):
        return False
    additional = item.get("additionalData")
    signature = additional.get("hmacSignature") if isinstance(additional, dict) else None
    amount = item.get("amount")
    if not isinstance(signature, str) or not isinstance(amount, dict):
        return False
    values = [*(item.get(name) or "" for name in _FIELDS)]
    values += [amount.get("value", ""), amount.get("currency") or ""]
    values += [item.get("eventCode") or "", item.get("success") or ""]
    signed = ":".join(str(value) for value in values).encode()
    given = signature.encode("ascii", "replace")
    found = False
    for key in keys:
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest())
        found |= hmac.compare_digest(expected, given)
    return found
