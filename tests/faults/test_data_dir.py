"""The worker's data directory fails: the disk full under a running worker, or a worker
restarted on a directory it cannot write (a volume come back read-only). A worker whose
state cannot be written must say so and not go on as if it had; one started there refuses,
naming the directory; once the disk is mended the loop recovers. Nothing lost, nothing
doubled.

(A filesystem is not remounted read-only under a process writing to it: the kernel refuses
while files are open for writing, except on its own I/O errors, which a test cannot cause.
So read-only is the restart's fault and a full disk the running worker's.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.ops.health import LIVENESS_PATH
from tests.faults.check import assert_nothing_lost_nor_doubled
from tests.faults.conftest import Volume
from tests.faults.loop import ORDERS, RATE, Loop, Process, sample
from tests.support import wait_for


def _gave_up(worker: Process) -> bool:
    """The worker stopped, or tells its liveness probe it cannot go on (Kubernetes then
    restarts it)."""
    return worker.process.poll() is not None or worker.get(LIVENESS_PATH)[0] == 503


def _refused(loop: Loop, name: str, data: Path, cause: str) -> None:
    """A worker started on `data` stops at once, naming the directory and `cause`."""
    worker = loop.start_worker(name, data_dir=data)
    wait_for(lambda: worker.process.poll() is not None, timeout=60,
             what=f"{name}, started on a directory it cannot write, to stop")  # fmt: skip
    log = worker.log_path.read_text()
    assert worker.process.returncode != 0, log
    assert f"ERPBRIDGE_DATA_DIR={data}" in log and cause in log, log


@pytest.mark.seed(19)
def test_the_disk_full_under_a_running_worker(loop: Loop, volume: Volume, seed: int) -> None:
    data = volume.path / "data"
    events = sample(seed, ORDERS)
    worker = loop.start_worker("worker-1", data_dir=data)
    loop.start_connector()
    loop.feed(events, rate=RATE)
    loop.wait_consumed(worker, len(events) // 4, timeout=120)
    volume.fill()
    wait_for(lambda: _gave_up(worker), timeout=60,
             what="the worker to give up once its state could not be written")  # fmt: skip
    assert "No space left on device" in worker.log_path.read_text(), worker.log_tail()
    worker.stop()
    _refused(loop, "worker-2", data, "No space left on device")
    volume.free()
    loop.start_worker("worker-3", data_dir=data)
    loop.wait_drained(timeout=300)
    assert_nothing_lost_nor_doubled(loop)


@pytest.mark.seed(20)
def test_a_worker_restarted_on_a_read_only_data_directory(
    loop: Loop, volume: Volume, seed: int
) -> None:
    data = volume.path / "data"
    events = sample(seed, ORDERS)
    worker = loop.start_worker("worker-1", data_dir=data)
    loop.start_connector()
    loop.feed(events, rate=RATE)
    loop.wait_consumed(worker, len(events) // 4, timeout=120)
    assert worker.stop() == 0
    volume.read_only()
    _refused(loop, "worker-2", data, "Read-only file system")
    volume.writable()
    loop.start_worker("worker-3", data_dir=data)
    loop.wait_drained(timeout=300)
    assert_nothing_lost_nor_doubled(loop)
