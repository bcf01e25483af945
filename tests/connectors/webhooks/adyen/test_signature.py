"""Adyen's HMAC over the notification item's fields, on Adyen's own signed samples: a
merchantReference with a colon and one with backslashes, signed with the key of the Adyen
library's test (test/test_util.py, test_webhooks_with_slashes)."""

from __future__ import annotations

import copy

import pytest

from connectors.webhooks.adyen.signature import item_signed
from tests.connectors.webhooks.vendor import adyen

KEY = b"74F490DD33F7327BAECC88B2947C011FC02D014A473AAA33A8EC93E4DC069174"
OTHER = b"44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"

SAMPLES = ["colon_notification.json", "backslash_notification.json"]


@pytest.mark.parametrize("name", SAMPLES)
def test_adyens_samples_verify_with_its_key_and_with_it_among_others(name: str) -> None:
    assert item_signed(adyen(name), [KEY])
    assert item_signed(adyen(name), [OTHER, KEY])


@pytest.mark.parametrize("name", SAMPLES)
def test_a_changed_field_or_another_key_does_not(name: str) -> None:
    assert not item_signed(adyen(name), [OTHER])
    for path, value in [("pspReference", "X"), ("success", "false"), ("eventCode", "CAPTURE")]:
        item = adyen(name) | {path: value}
        assert not item_signed(item, [KEY])
    more = copy.deepcopy(adyen(name))
    more["amount"]["value"] = 100000
    assert not item_signed(more, [KEY])


def test_a_missing_signature_does_not() -> None:
    item = adyen("colon_notification.json")
    del item["additionalData"]["hmacSignature"]
    assert not item_signed(item, [KEY])
    assert not item_signed("not an item", [KEY])
