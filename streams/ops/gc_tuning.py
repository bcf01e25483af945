"""The garbage collector set for a long-running stream process.

With CPython's defaults (a young collection every 700 allocations) a batch of a thousand
records outlives several young collections, so its short-lived objects are promoted and then
found again by full collections, each of which walks every object of the process: Faust,
aiokafka, the parsed schemas. Measured on the sample backlog, 10 % of the worker's CPU went
to the collector, 80 % of that to full collections of about 70 ms (docs/benchmarks.md).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
"""Allocations between young collections: more than a batch makes, so a batch's objects
are mostly freed by reference counting before a collection sees them."""


def tune_for_streaming() -> None:
    """Call once imports and start-up are done: what exists then lives as long as the
    process, and freezing it keeps every later full collection from walking it again."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
