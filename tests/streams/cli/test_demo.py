"""`erpbridge demo` (what `make run` runs) end to end, and its Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import free_port, wait_for


def _demo(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        # Its own session, so a Ctrl-C can be sent to the whole group as a terminal would.
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "demo", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    return {**env, "ERPBRIDGE_WEB_PORT": str(free_port()), **extra}


def test_demo_feeds_the_worker_until_every_event_is_accounted_for(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path
) -> None:
    log = tmp_path / "demo.log"
    env = _env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap_servers,
        ERPBRIDGE_TOPIC_PREFIX=topic_prefix,
        ERPBRIDGE_APP_ID=f"{topic_prefix}demo",
    )
    process = _demo(env, log, "--orders", "40", "--rate", "0", "--exit-when-done")
    try:
        assert process.wait(timeout=180) == 0, log.read_text()
    finally:
        process.kill()
    output = log.read_text()
    final = re.search(r"final: published (\d+), accounting (\{.*\})", output)
    assert final, output
    published = int(final.group(1))
    assert final.group(2) == str(
        {
            "consumed": published,
            "applied": published - 3,
            "duplicate": 0,
            "waiting": 0,
            "dead_lettered": 3,
            "waiting_applied": 0,
            "waiting_dead_lettered": 0,
        }
    )
    assert "| dead-lettered   3 |" in output  # the live progress line
    assert re.search(r"\| erp commands sent +\d+, waiting +\d+, calls saved +\d+", output)


def test_ctrl_c_stops_worker_feed_and_its_own_broker(tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    process = _demo(_env(), log, "--orders", "5000", "--rate", "200")
    try:
        wait_for(lambda: "published" in log.read_text(), timeout=180, what="a progress line")
        broker = re.search(r"broker: local-jvm at 127\.0\.0\.1:(\d+)", log.read_text())
        assert broker, log.read_text()
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=90) == 0, log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    output = log.read_text()
    assert "final: published" in output
    assert "Connection refused" not in output, "the feed outlived the broker"
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", int(broker.group(1)))) != 0, "broker still up"
