"""Out-of-order deliveries: an event older, by the provider's own time, than one already
delivered for the same key and kind (a stock level from before the last one, a payment
update overtaken by a later one).

They are published all the same, since the topology's rules already order them (a stock
snapshot older than the latest is ignored; an order event carries its own id and applies
once, whatever came first); they are counted, so a provider's reordering shows. The memory
is this replica's and bounded: a metric, not a rule."""

from __future__ import annotations

from collections import OrderedDict


class Arrivals:
    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._newest: OrderedDict[tuple[str, str, str], int] = OrderedDict()

    def late(self, topic: str, key: str, kind: str, occurred_ms: int) -> bool:
        """Whether this event is older than one seen for (topic, key, kind); notes it."""
        slot = (topic, key, kind)
        newest = self._newest.get(slot)
        if newest is not None and occurred_ms < newest:
            return True
        self._newest[slot] = occurred_ms
        self._newest.move_to_end(slot)
        if len(self._newest) > self.capacity:
            self._newest.popitem(last=False)
        return False
