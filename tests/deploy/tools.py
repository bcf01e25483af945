"""Go tools the deploy tests run, built once from the Go module proxy into the cache.

kustomize renders the overlays and promtool runs the alert rules' unit tests; neither is
taken from PATH (a CI machine may have another version, or none). Building needs Go.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

from streams.local.jvm import cache_dir, fill_cache_once

_log = logging.getLogger(__name__)

KUSTOMIZE = ("sigs.k8s.io/kustomize/kustomize/v5", "v5.8.2")
"""The newest kustomize whose go.mod accepts Go 1.26 (v5.8.3 asks for 1.27)."""
PROMTOOL = ("github.com/prometheus/prometheus/cmd/promtool", "v0.316.0")

_GO_MISSING = "install Go 1.26 or newer (go not on PATH nor in /usr/local/go/bin)"


class ToolUnavailable(RuntimeError):
    pass


def go() -> str:
    found = shutil.which("go") or shutil.which("go", path="/usr/local/go/bin")
    if found is None:
        raise ToolUnavailable(_GO_MISSING)
    return found


def tool(package: str, version: str) -> Path:
    """The binary of `package@version`, built with `go install` on first use."""
    name = package.rsplit("/", 1)[-1]
    if name.startswith("v") and name[1:].isdigit():  # a major-version suffix: kustomize/v5
        name = package.rsplit("/", 2)[-2]
    target = cache_dir(os.environ) / "tools" / f"{name}-{version}"

    def build(staged: Path, scratch: Path) -> None:
        started = time.monotonic()
        # Go's own module and build caches stay where they are: a rebuild reuses them.
        result = subprocess.run(
            [go(), "install", f"{package}@{version}"],
            env={**os.environ, "GOBIN": str(staged), "GOTOOLCHAIN": "local"},
            cwd=scratch,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if result.returncode != 0:
            raise ToolUnavailable(
                f"go install {package}@{version} failed:\n{result.stderr[-3000:]}"
            )
        _log.info("built %s %s in %.0f s", name, version, time.monotonic() - started)

    return fill_cache_once(target, build, ToolUnavailable) / name


def kustomize_build(directory: Path) -> str:
    result = subprocess.run(
        [str(tool(*KUSTOMIZE)), "build", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise AssertionError(f"kustomize build {directory} failed:\n{result.stderr}")
    return result.stdout
