"""The stream worker with its table recoveries held back where standby records can be lost.

`python -m tests.streams.slow_recovery_worker SECONDS`: a recovery resumes the flow twice
after it has sought the standby changelog partitions: before it starts reading them, and
when it completes. Before each of those resumes the recovery's reader takes nothing from
the changelog queue until standby records have been queued (or SECONDS have passed), so
the resume certainly finds them queued, as it does now and then when a fetch lands just
before it (streams.topology.faust_app keeps them; Faust dropped them). Settings come from
the environment as usual.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from typing import Any

from faust.tables.recovery import Recovery

from streams.ops.settings import Settings
from streams.topology import worker
from streams.topology.app import create_topology

QUIET_SECONDS = 0.5
"""No more records queued for this long: the fetches that were coming have landed."""


def hold_back(seconds: float) -> None:
    seek = Recovery._seek_offsets
    complete = Recovery.on_recovery_completed

    @functools.wraps(seek)
    async def seek_then_hold(self: Recovery, consumer: Any, tps: Any, *args: Any) -> None:
        await seek(self, consumer, tps, *args)
        if tps and tps == self.standby_tps:
            await _hold_reader_until_resumed(self, seconds)

    @functools.wraps(complete)
    async def hold_then_complete(self: Recovery, *args: Any, **kwargs: Any) -> None:
        await _hold_reader_until_resumed(self, seconds)
        await complete(self, *args, **kwargs)

    Recovery._seek_offsets = seek_then_hold  # type: ignore[method-assign,assignment]
    Recovery.on_recovery_completed = hold_then_complete  # type: ignore[method-assign]


async def _hold_reader_until_resumed(recovery: Recovery, seconds: float) -> None:
    """Keep the recovery's reader off the changelog queue until the flow's next resume,
    and return once records are queued and no more come (or `seconds` have passed)."""
    queue: Any = recovery.tables.changelog_queue
    flow: Any = recovery.app.flow_control
    take, resume = queue.get, flow.resume
    opened = asyncio.Event()

    async def after_opening() -> Any:
        await opened.wait()
        return await take()

    def resume_then_open() -> None:
        sys.stderr.write(f"recovery held back: {queue.qsize()} changelog records queued\n")
        resume()
        del queue.get, flow.resume
        opened.set()

    queue.get, flow.resume = after_opening, resume_then_open
    clock = asyncio.get_running_loop().time
    deadline = clock() + seconds
    size, since = 0, clock()
    while clock() < deadline:
        if queue.qsize() != size:
            size, since = queue.qsize(), clock()
        elif size and clock() - since > QUIET_SECONDS:
            return
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    hold_back(float(sys.argv[1]))
    worker.run(create_topology(Settings()), loglevel="info")
