"""The benchmark's input: the sample mix over a scaled catalogue, generated and encoded once.

Generation is slow for large catalogues (the simulator scans every SKU for stock
transfers), so encoded workloads are cached on disk, keyed by everything that shapes
their bytes: parameters, the generator's source and the schemas.
"""

from __future__ import annotations

import hashlib
import itertools
import marshal
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streams.contracts.codec import codec_from_settings
from streams.contracts.topics import INPUTS
from streams.local.jvm import cache_dir
from streams.ops.settings import REPO_ROOT, Settings
from streams.sample.generator import DEFAULT_START, Catalogue, generate

_FORMAT = 1
_PROGRESS_EVERY = 25_000


@dataclass(frozen=True)
class Workload:
    """N encoded input events in generation (time) order, as parallel lists."""

    seed: int
    skus: int
    topics: tuple[str, ...]
    """Logical input topics; `topic_of[i]` indexes this."""
    topic_of: bytes
    keys: list[bytes]
    values: list[bytes]
    event_ids: list[str]
    members: list[str]
    """Record name inside the envelope, e.g. OrderPlaced."""

    def __len__(self) -> int:
        return len(self.values)

    def topic(self, index: int) -> str:
        return self.topics[self.topic_of[index]]

    def by_topic(self) -> Counter[str]:
        return Counter(self.topics[i] for i in self.topic_of)

    def by_member(self) -> Counter[str]:
        return Counter(self.members)

    def encoded_bytes(self) -> int:
        return sum(map(len, self.values))

    def opening_stock(self) -> int:
        """How many events the stream opens with that are stock snapshots (every SKU in every
        warehouse): the master data a shop has before its first order."""
        for index, member in enumerate(self.members):
            if member != "StockSnapshot":
                return index
        return len(self.members)


def build(
    events: int,
    skus: int,
    seed: int,
    settings: Settings,
    *,
    use_cache: bool = True,
    say: Callable[[str], None] = print,
) -> Workload:
    """`events` events of `generate(seed, ..., Catalogue.scaled(skus))`, encoded with the codec."""
    if events < 1:
        raise ValueError(f"events must be >= 1, got {events}")
    # A registry's schema ids belong to that registry: never reuse its bytes elsewhere.
    cacheable = use_cache and not settings.schema_registry_url
    path = _cache_path(events, skus, seed, settings)
    if cacheable and path.is_file():
        workload = _load(path, seed, skus)
        if workload is not None and len(workload) == events:
            say(f"workload: {events:,} encoded events loaded from {path}")
            return workload
    workload = _generate(events, skus, seed, settings, say)
    if cacheable:
        _store(path, workload)
        say(f"workload: cached in {path}")
    return workload


def _generate(
    events: int, skus: int, seed: int, settings: Settings, say: Callable[[str], None]
) -> Workload:
    started = time.monotonic()
    catalogue = Catalogue.scaled(skus)
    codec = codec_from_settings(settings)
    topics = tuple(INPUTS)
    index = {name: i for i, name in enumerate(topics)}
    topic_of = bytearray()
    keys: list[bytes] = []
    values: list[bytes] = []
    event_ids: list[str] = []
    members: list[str] = []
    interned: dict[str, str] = {}
    say(
        f"workload: generating {events:,} events over {skus:,} SKUs (seed {seed}); "
        "large catalogues take minutes, the result is cached"
    )
    # At least one event per order, so `events` orders are always enough; the stream is
    # cut after `events` events, like a shop observed up to a moment.
    for n, event in enumerate(
        itertools.islice(generate(seed, events, catalogue, DEFAULT_START), events), 1
    ):
        topic_of.append(index[event.topic])
        keys.append(event.key.encode())
        values.append(codec.encode(event.schema_name, event.datum, topic=event.topic))
        event_ids.append(event.datum["event_id"])
        member = event.datum["event"][0].removeprefix("erpbridge.")
        members.append(interned.setdefault(member, member))
        if n % _PROGRESS_EVERY == 0:
            say(f"workload: {n:,} events ({time.monotonic() - started:.0f}s)")
    if len(values) < events:
        raise RuntimeError(f"the generator stopped after {len(values)} of {events} events")
    say(f"workload: generated and encoded in {time.monotonic() - started:.1f}s")
    return Workload(seed, skus, topics, bytes(topic_of), keys, values, event_ids, members)


def _cache_path(events: int, skus: int, seed: int, settings: Settings) -> Path:
    digest = hashlib.sha256(f"{_FORMAT}|{events}|{skus}|{seed}|{DEFAULT_START}".encode())
    for source in ("sample/generator.py", "domain/money.py", "contracts/codec.py"):
        digest.update((REPO_ROOT / "streams" / source).read_bytes())
    for schema in sorted(Path(settings.schemas_dir).rglob("*.avsc")):
        digest.update(str(schema.relative_to(settings.schemas_dir)).encode())
        digest.update(schema.read_bytes())
    name = f"workload-{events}-{skus}-{seed}-{digest.hexdigest()[:16]}.marshal"
    return cache_dir(os.environ) / "bench" / name


def _store(path: Path, workload: Workload) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = marshal.dumps(
        (
            _FORMAT,
            workload.topics,
            workload.topic_of,
            workload.keys,
            workload.values,
            workload.event_ids,
            workload.members,
        )
    )
    staged = path.with_suffix(f".{os.getpid()}.tmp")
    staged.write_bytes(data)
    staged.replace(path)  # atomic: a concurrent run sees the whole file or none


def _load(path: Path, seed: int, skus: int) -> Workload | None:
    try:
        fmt, topics, topic_of, keys, values, event_ids, members = marshal.loads(path.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if fmt != _FORMAT:
        return None
    return Workload(seed, skus, tuple(topics), topic_of, keys, values, event_ids, members)
