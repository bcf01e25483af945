"""Adyen's HMAC of a standard notification item, checked by Adyen's own library
(`Adyen.util.is_valid_hmac_notification`): base64 of HMAC-SHA256, with the hex key from
the Customer Area, over the item's pspReference, originalReference, merchantAccountCode,
merchantReference, amount value and currency, eventCode and success, compared in constant
time. It travels inside the item, in additionalData.hmacSignature, so it is checked on
the parsed item, before any mapping."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from Adyen.util import is_valid_hmac_notification


def item_signed(item: Any, keys: Sequence[bytes]) -> bool:
    """Whether `item` carries a signature one of `keys` (hex text, as Adyen shows them) made."""
    if not isinstance(item, dict):
        return False
    additional = item.get("additionalData")
    if not isinstance(additional, dict) or not isinstance(additional.get("hmacSignature"), str):
        return False
    if not isinstance(item.get("amount"), dict):
        return False
    # Every key is tried, so the time taken says nothing about which one matched.
    found = False
    for key in keys:
        try:
            found |= bool(is_valid_hmac_notification(item, key.decode()))
        except (ValueError, KeyError, TypeError):
            # An empty signature, or an amount without its value or currency.
            return False
    return found
