"""`erpbridge demo` (what `make run` runs): the whole loop to the ERP check, and its Ctrl-C."""

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
    return {
        **env,
        "ERPBRIDGE_WEB_PORT": str(free_port()),
        "ERPBRIDGE_CONNECTOR_WEB_PORT": str(free_port()),
        **extra,
    }


def test_demo_runs_the_loop_until_the_erp_agrees_with_erpbridge(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path
) -> None:
    log = tmp_path / "demo.log"
    env = _env(
        KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap_servers,
        ERPBRIDGE_TOPIC_PREFIX=topic_prefix,
        ERPBRIDGE_APP_ID=f"{topic_prefix}demo",
    )
    process = _demo(env, log, "--orders", "40", "--rate", "0")
    try:
        assert process.wait(timeout=600) == 0, log.read_text()
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
    # The live progress line, over the whole loop.
    assert "dead-lettered   3 |" in output
    assert re.search(r"\| erp commands sent +\d+, waiting +\d+, calls saved +\d+", output)
    assert re.search(r"\| ERP calls +\d+ \( *[\d.]+/s\), done +\d+, failed +0", output)
    assert re.search(r"\| open alerts +\d+", output)
    # The check at the end: orders once in the ERP, stock per SKU equal, as a table.
    orders = re.search(r"^sales orders, exactly once +(\d+) +(\d+) +ok$", output, re.M)
    assert orders and orders.group(1) == orders.group(2) and int(orders.group(1)) > 0, output
    stock_rows = re.findall(r"^stock (\S+) +(\d+) +(\d+) +ok$", output, re.M)
    assert len(stock_rows) == 20, output
    assert "the ERP agrees with erpbridge" in output


def test_ctrl_c_stops_worker_feed_connector_and_its_own_broker_and_erp(tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    process = _demo(_env(), log, "--orders", "5000", "--rate", "200")
    try:
        wait_for(lambda: "published" in log.read_text(), timeout=600, what="a progress line")
        broker = re.search(r"broker: local-jvm at 127\.0\.0\.1:(\d+)", log.read_text())
        erp = re.search(r"ERP: Tryton at http://127\.0\.0\.1:(\d+)/", log.read_text())
        assert broker and erp, log.read_text()
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=90) == 0, log.read_text()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    output = log.read_text()
    assert "final: published" in output
    assert "stopped before the loop drained: no ERP check" in output
    assert "Connection refused" not in output, "the feed outlived the broker"
    for what, port in (("broker", broker.group(1)), ("Tryton", erp.group(1))):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", int(port))) != 0, f"{what} still up"
