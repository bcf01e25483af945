"""The README's walkthrough ("Feed it your own events"), run as written: `erpbridge local up`
in one process, the second terminal's commands in a shell with what it printed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from streams.ops.settings import REPO_ROOT
from tests.support import free_port, wait_for


def _blocks() -> tuple[str, str]:
    """The walkthrough's two shell blocks: terminal 1's and terminal 2's."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme[readme.index("## Feed it your own events") :]
    section = section[: section.index("\n## ")]
    first, second = re.findall(r"```sh\n(.*?)```", section, re.S)
    return first, second


def test_the_readme_walkthrough_runs_as_written(
    kafka_broker: Any, topic_prefix: str, tmp_path: Path
) -> None:
    first, second = _blocks()
    assert [line for line in first.splitlines() if not line.startswith("#")] == [
        "erpbridge local up"
    ]
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        # The session broker stands for the user's: `local up` uses it as it is.
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "ERPBRIDGE_TOPIC_PREFIX": topic_prefix,
        "ERPBRIDGE_APP_ID": f"{topic_prefix}walkthrough",
        "ERPBRIDGE_WEB_PORT": str(free_port()),
    }
    with _local_up(env, "erpbridge", "local", "up") as printed:
        exports = [line.strip() for line in printed if line.startswith("export ")]
        assert f"export KAFKA_BOOTSTRAP_SERVERS={kafka_broker.bootstrap_servers}" in exports
        assert f"export ERPBRIDGE_TOPIC_PREFIX={topic_prefix}" in exports
        # Terminal 2, as written, with the exports `local up` printed in place of the
        # README's example address.
        script = "\n".join(
            "\n".join(exports) if line.startswith("export KAFKA_BOOTSTRAP_SERVERS=") else line
            for line in second.splitlines()
        )
        # `erpbridge` and the repo's files as a user has them; the variables `local up`
        # printed are the only settings the shell gets.
        shell_env = {
            k: v
            for k, v in env.items()
            if k not in ("KAFKA_BOOTSTRAP_SERVERS", "ERPBRIDGE_TOPIC_PREFIX")
        }
        done = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=REPO_ROOT,
            env=shell_env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        statuses = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        assert [(s["order_id"], s["status"], s["cause_event_id"]) for s in statuses] == [
            ("1001", "placed", "shop:orders/create:1001"),
            ("1001", "paid", "gateway:capture:ch_1001"),
            ("1001", "closed", "wms:shipment:SHP-1001"),
        ], done.stdout
    assert "stopping the local stack" in "".join(printed)


def test_local_up_with_a_registry_and_an_erp_serves_them_until_ctrl_c(
    kafka_broker: Any, schema_registry: Any, topic_prefix: str
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "ERPBRIDGE_SCHEMA_REGISTRY_URL": schema_registry.url,
        "ERPBRIDGE_TOPIC_PREFIX": topic_prefix,
        "ERPBRIDGE_CONNECTOR_WEB_PORT": str(port),
    }
    command = (sys.executable, "-m", "streams.cli", "local", "up", "--registry", "--erp")
    with _local_up(env, *command) as printed:
        assert f"export ERPBRIDGE_SCHEMA_REGISTRY_URL={schema_registry.url}\n" in printed
        assert any(line.startswith("ERP: Tryton at http://127.0.0.1:") for line in printed)
        # The ERP connector it started answers, ready to execute commands.
        wait_for(lambda: _status(port, "/readyz") == 200, timeout=120, what="the connector ready")
    assert _status(port, "/livez") is None  # the connector stopped with the stack


@contextmanager
def _local_up(env: dict[str, str], *command: str) -> Iterator[list[str]]:
    """`erpbridge local up` running until it printed its settings; the lines it printed,
    kept growing; at the end a Ctrl-C, after which it must exit 0."""
    stack = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    printed: list[str] = []
    reader = threading.Thread(target=lambda: printed.extend(stack.stdout or []), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("Ctrl-C stops" in line for line in printed) or stack.poll(),
                 timeout=240, what="`erpbridge local up` ready")  # fmt: skip
        yield printed
    finally:
        os.killpg(stack.pid, signal.SIGINT)
        code = stack.wait(timeout=90)
        reader.join(timeout=10)
    assert code == 0, "".join(printed)


def _status(port: int, path: str) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None
