"""Loop suppression: a stock webhook echoing erpbridge's own push is recognised."""

from __future__ import annotations

import pytest

from connectors.webhooks.echoes import Echoes
from streams.contracts.stock_pushes import Push

WINDOW = 600_000
PUSH = Push("IPOD2008GREEN", "WH-EAST", 6, pushed_ms=1_000_000)


def test_the_level_erpbridge_pushed_is_an_echo_within_the_window() -> None:
    echoes = Echoes(WINDOW)
    echoes.pushed(PUSH)
    assert echoes.echoes("IPOD2008GREEN", "WH-EAST", 6, now_ms=1_000_500)
    assert echoes.echoes("IPOD2008GREEN", "WH-EAST", 6, now_ms=1_000_000 + WINDOW)


def test_another_level_place_sku_or_an_old_push_is_a_real_change() -> None:
    echoes = Echoes(WINDOW)
    echoes.pushed(PUSH)
    assert not echoes.echoes("IPOD2008GREEN", "WH-EAST", 5, now_ms=1_000_500)  # a sale landed
    assert not echoes.echoes("IPOD2008GREEN", "WH-WEST", 6, now_ms=1_000_500)
    assert not echoes.echoes("IPOD2008RED", "WH-EAST", 6, now_ms=1_000_500)
    assert not echoes.echoes("IPOD2008GREEN", "WH-EAST", 6, now_ms=1_000_001 + WINDOW)


def test_only_the_latest_push_counts_whatever_order_they_are_read_in() -> None:
    echoes = Echoes(WINDOW)
    echoes.pushed(Push("IPOD2008GREEN", "WH-EAST", 9, pushed_ms=1_000_100))
    echoes.pushed(PUSH)  # older: read later, as from another partition or a replay
    assert echoes.echoes("IPOD2008GREEN", "WH-EAST", 9, now_ms=1_000_500)
    assert not echoes.echoes("IPOD2008GREEN", "WH-EAST", 6, now_ms=1_000_500)


def test_a_push_travels_as_json_and_garbage_is_refused() -> None:
    assert Push.from_json(PUSH.to_json()) == PUSH
    assert PUSH.key == b"IPOD2008GREEN@WH-EAST"
    for garbage in (b"{}", b'{"sku": "A", "warehouse_id": "W", "quantity": "6", "pushed_ms": 1}'):
        with pytest.raises(ValueError, match="not a stock push"):
            Push.from_json(garbage)
