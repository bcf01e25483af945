"""A property of the storefront sink on the session broker against the WooCommerce double:
whatever the interleaving of availability changes, the sink's polls, outages of the shop
longer than the sink's give-up time (the levels read meanwhile fail), and restarts of the
sink, the shop ends with the level of the latest availability of each SKU, never an older
one."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.storefront.sink import StorefrontSink
from streams.ops.settings import Settings, WebhookRoute
from tests.connectors.storefront.flow import availability, new_sink, produce, sink_settings
from tests.connectors.webhooks.doubles import WOO_KEY, WOO_SECRET, woocommerce_admin
from tests.support import wait_for

SKUS = {11: "SKU-A", 12: "SKU-B", 13: "SKU-C"}
_EXAMPLE = itertools.count()

Step = tuple[Any, ...]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("level"), st.sampled_from(sorted(SKUS.values())), st.integers(0, 40)),
        st.tuples(st.just("poll")),
        st.tuples(st.just("outage"), st.integers(1, 2)),
        st.tuples(st.just("restart")),
    ),
    min_size=2,
    max_size=9,
)


@settings(
    max_examples=8,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(story=steps)
def test_the_shop_ends_with_each_skus_latest_level(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path, story: list[Step]
) -> None:
    prefix = f"{topic_prefix}{next(_EXAMPLE)}-"  # each example its own topics and group
    with woocommerce_admin() as shop:
        for product_id, sku in SKUS.items():
            shop.products[product_id] = {"id": product_id, "sku": sku, "manage_stock": False}
        route = WebhookRoute(
            provider="woocommerce", warehouses={"default": "WH-1"}, admin_url=shop.url,
            push_stock=True,
        )  # fmt: skip
        config = sink_settings(
            kafka_broker, prefix, tmp_path / prefix, {"shop": route},
            {"shop": f"{WOO_KEY}:{WOO_SECRET}"},
        ).model_copy(update={"erp_give_up_seconds": 0.5})  # fmt: skip
        latest: dict[str, int] = {}
        sink = _started(config)
        try:
            for step in story:
                if step[0] == "level":
                    _, sku, quantity = step
                    produce(config, [(sku, availability(sku, quantity))])
                    latest[sku] = quantity
                elif step[0] == "poll":
                    sink.poll(timeout=0.5)
                elif step[0] == "outage":
                    shop.failing = True
                    for _ in range(step[1]):
                        sink.poll(timeout=0.5)
                    shop.failing = False
                else:
                    sink.close()
                    sink = _started(config)

            def shown() -> dict[str, int]:
                return {
                    p["sku"]: p["stock_quantity"]
                    for p in shop.products.values()
                    if "stock_quantity" in p
                }

            def converged() -> bool:
                sink.poll(timeout=0.5)
                return shown() == latest

            wait_for(converged, timeout=60, what=f"the shop to show {latest}")
        finally:
            sink.close()


def _started(config: Settings) -> StorefrontSink:
    """A sink that has its partitions: a poll of it reads what waits."""
    sink = new_sink(config)
    sink.start()
    wait_for(lambda: sink.poll(timeout=0.5) and sink.assigned(), timeout=60, what="partitions")
    return sink
