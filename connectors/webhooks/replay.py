"""Dead-lettered webhooks mapped again, once what made them unmappable is fixed (a location
or SKU added to the route, an API key given): `erpbridge dlq replay webhooks`.

A dead letter holds the request as it came (raw body, the provider's headers), so it goes
through what a live request goes through after its answer's checks: the signature with the
route's secrets of now (without Stripe's age limit: the request was checked on arrival,
this rules out a letter written by anyone but the connector), the provider's API, the
mapping and the schema. Its events keep the provider's ids, so a replay that lands twice,
or after the provider re-sent the webhook, is one event to the topology. What is not done
again: the echo check (a letter is never a stock level erpbridge pushed: those verify and
map) and the count of reordered deliveries.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from multidict import CIMultiDict

from connectors.webhooks.inputs import BadDelivery, Unavailable, UnknownTopic, Unmappable
from connectors.webhooks.intake import Intake
from connectors.webhooks.providers import Request, Unauthentic
from connectors.webhooks.routes import Route, route_at
from streams.contracts import deadletter
from streams.ops.dlq import StoredDeadLetter
from streams.ops.records import Outgoing


@dataclass(frozen=True)
class Replay:
    letter: StoredDeadLetter
    records: tuple[Outgoing, ...] = ()
    """What it publishes now."""
    problem: str | None = None
    """Why it still publishes nothing."""

    @property
    def route(self) -> str:
        return self.letter.headers.get(deadletter.SOURCE_TOPIC, "?")


async def replays(
    letters: Sequence[StoredDeadLetter], routes: dict[tuple[str, str], Route], intake: Intake
) -> list[Replay]:
    """Each letter mapped again with the routes of now, in the order given."""
    return [await _replay(letter, routes, intake) for letter in letters]


async def _replay(
    letter: StoredDeadLetter, routes: dict[tuple[str, str], Route], intake: Intake
) -> Replay:
    path = letter.headers.get(deadletter.SOURCE_TOPIC, "")
    route = route_at(routes, path)
    if route is None:
        return Replay(letter, problem=f"no route {path!r} is configured now")
    request = Request(
        CIMultiDict(
            (name, value.decode(errors="replace"))
            for name, value in deadletter.original_headers(letter.record.headers)
        ),
        letter.record.value or b"",
    )
    signature = route.provider.problem(request, route.keys, math.inf)
    if signature is not None:
        return Replay(
            letter, problem=f"its signature does not verify with the route's secrets ({signature})"
        )
    try:
        document = json.loads(request.body, parse_float=Decimal)
        inputs = await intake.inputs(route, request, document)
        records = tuple(intake.record(item) for item in inputs)
    except Unmappable as error:
        return Replay(letter, problem=f"still unmappable: {error}")
    except UnknownTopic as error:
        return Replay(letter, problem=str(error))
    except Unavailable as error:
        return Replay(letter, problem=f"the provider's API did not answer: {error}")
    except Unauthentic as error:
        return Replay(
            letter, problem=f"its signature does not verify with the route's secrets ({error})"
        )
    except (BadDelivery, ValueError) as error:
        return Replay(letter, problem=f"not a request erpbridge can map: {error}")
    return Replay(letter, records)
