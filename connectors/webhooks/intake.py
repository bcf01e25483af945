"""From a verified, parsed request to the records it publishes: what the provider's API adds
(a Stripe payout's transactions, a WooCommerce order's refunds), the provider's mapping, each input encoded for its topic.
The service runs it on every webhook, `erpbridge dlq replay webhooks` again on a dead
letter's stored request."""

from __future__ import annotations

from typing import Any

import httpx

from connectors.webhooks.inputs import Input, Unmappable
from connectors.webhooks.providers import Api, Request
from connectors.webhooks.routes import Route
from streams.contracts.codec import Codec, EncodeError
from streams.contracts.jsonlines import JsonLineError, to_datum
from streams.contracts.topics import TopicCatalog, spec
from streams.ops.records import Outgoing


class Intake:
    def __init__(self, catalog: TopicCatalog, codec: Codec, client: httpx.AsyncClient) -> None:
        self._catalog = catalog
        self._codec = codec
        self._client = client

    async def inputs(self, route: Route, request: Request, document: Any) -> list[Input]:
        """The input events of `document` (Unmappable, UnknownTopic, Unavailable,
        BadDelivery or Unauthentic when there are none)."""
        provider = route.provider
        api = Api(self._client, route.api_url, route.api_key)
        fetched = await provider.fetch(request, document, api)
        return provider.inputs(request, document, route.references, route.keys, fetched)

    def record(self, item: Input) -> Outgoing:
        return encode(item, self._catalog, self._codec)


def encode(item: Input, catalog: TopicCatalog, codec: Codec) -> Outgoing:
    """`item` in its topic's Avro schema, keyed for its partition; Unmappable when the mapped
    event breaks the schema."""
    schema_name = spec(item.topic).value_schema
    assert schema_name is not None  # the input topics have one
    physical = catalog.physical(item.topic)
    try:
        datum = to_datum(codec.store.current(schema_name), item.record)
        value = codec.encode(schema_name, datum, topic=physical)
    except (JsonLineError, EncodeError) as error:
        raise Unmappable("invalid-event", str(error)) from None
    return Outgoing(physical, None, item.key.encode(), value, (), item.event_id)
