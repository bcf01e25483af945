"""A real Medusa 2 storefront on PostgreSQL for development and tests.

The Medusa project is streams/local/medusa/ (package.json with exact pins, its
package-lock.json, medusa-config.js and a subscriber that forwards every event to
`ERPBRIDGE_WEBHOOK_URL` when set). Its node_modules come from the npm registry into the cache
dir once per lock file (`npm ci --ignore-scripts`: no install script is needed; later installs
come from npm's own cache). Node.js 20.19+ and npm come from the machine (installed with apt
when running as root and they are missing). PostgreSQL is a throwaway cluster from the
machine's binaries, as for Tryton. The first run also prepares a cluster holding a migrated
database with the admin user and the sample store (streams.local.medusa_seed: region, sales
channel, stock location, shipping option, publishable key, one product per SKU with its stock)
and keeps it in the cache; every run copies that cluster, creates its database with `CREATE
DATABASE ... TEMPLATE`, and runs `medusa start` on a free 127.0.0.1 port.

Medusa runs with NODE_ENV=production (no ts-node, JSON log lines), no Redis (event bus, cache,
workflows and locks in memory) and telemetry off twice over: MEDUSA_DISABLE_TELEMETRY stops
events being queued, and a configstore under the run dir saying `telemetry.enabled: false`
stops the CLI's banner and its detached flusher process.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from streams.local import debian
from streams.local.jvm import (
    cache_dir,
    dispose_log,
    fill_cache_once,
    free_ports,
    log_tail,
    new_log,
)
from streams.local.medusa_seed import (
    PAYMENT_PROVIDER,
    MedusaClient,
    SeededStore,
    SeededVariant,
    seed_store,
    store_spec,
)
from streams.local.postgres import (
    Postgres,
    PostgresUnavailable,
    new_run_dir,
    pg_major,
    postgres_bin,
    started_copy,
)
from streams.sample.generator import Catalogue

_log = logging.getLogger(__name__)

MEDUSA_VERSION = "2.21.2"
"""@medusajs/medusa, framework and cli, as pinned in streams/local/medusa/package.json."""
PROJECT = Path(__file__).with_name("medusa")
_NPM_FILES = ("package.json", "package-lock.json")
_PROJECT_FILES = ("medusa-config.js", "src/subscribers/erpbridge-webhook.js")
_SEED_MODULE = Path(__file__).with_name("medusa_seed.py")
ADMIN_EMAIL = "admin@erpbridge.example"
ADMIN_PASSWORD = "erpbridge-admin"
DATABASE = "medusa"
_TEMPLATE_DATABASE = "medusa_template"
_PG_SUPERUSER = "medusa"
# engines of @medusajs/medusa 2.21: ^20.19.0 || >=22.12.0
_NODE_MINIMUM = {20: 19, 22: 12}
_INSTALL_TIMEOUT_S = 900.0
_PREPARE_TIMEOUT_S = 600.0
_START_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 30.0
NODE_MISSING = (
    "install Node.js 20.19+ (or 22.12+) with npm (Debian/Ubuntu: apt-get install nodejs npm, "
    "or NodeSource); node and npm not found on PATH"
)


class MedusaUnavailable(RuntimeError):
    """No Medusa can be provided; the message says what to install."""


class Medusa:
    """A running Medusa 2: Admin API under `url`/admin, Store API under `url`/store.

    The ids are those of the seeded store (streams.local.medusa_seed), `variants` by SKU.
    `stop_server` and `start_server` stop Medusa and start it again on the same port and
    database (PostgreSQL keeps running): a storefront that is down for a while.
    """

    def __init__(
        self, *, url: str, store: SeededStore, log_path: Path, server: _MedusaServer, pg_port: int
    ) -> None:
        self.url = url
        self.admin_email = ADMIN_EMAIL
        self.admin_password = ADMIN_PASSWORD
        self.publishable_key = store.publishable_key
        self.publishable_key_id = store.publishable_key_id
        self.region_id = store.region_id
        self.sales_channel_id = store.sales_channel_id
        self.stock_location_id = store.stock_location_id
        self.warehouse_id: str = _default_spec()["location"]["code"]
        """The sample catalogue's warehouse the stock location is."""
        self.shipping_profile_id = store.shipping_profile_id
        self.shipping_option_id = store.shipping_option_id
        self.variants: Mapping[str, SeededVariant] = store.variants
        self.log_path = log_path
        self.postgres_port = pg_port
        self._server = server

    def admin(self) -> MedusaClient:
        """A client of the Admin API, logged in as the admin user."""
        return MedusaClient.admin(self.url, self.admin_email, self.admin_password)

    def secret_key(self, title: str) -> str:
        """A new secret API key (`sk_...`), what erpbridge's Medusa routes call the Admin API
        with as their admin token."""
        with self.admin() as admin:
            made = admin.post("/admin/api-keys", {"title": title, "type": "secret"})
        return str(made["api_key"]["token"])

    def store(self) -> MedusaClient:
        """A client of the Store API with the seeded sales channel's publishable key."""
        return MedusaClient.store(self.url, self.publishable_key)

    def checkout(
        self, lines: Mapping[str, int], email: str, address: Mapping[str, str]
    ) -> dict[str, Any]:
        """An order placed through the Store API as a shopper places it: a cart in the
        seeded region and channel with `lines` (variant id -> quantity), the address, the
        seeded shipping option, a payment session with the system provider, completed."""
        with self.store() as store:
            cart = store.post(
                "/store/carts",
                {"region_id": self.region_id, "sales_channel_id": self.sales_channel_id},
            )["cart"]
            cart_path = f"/store/carts/{cart['id']}"
            for variant_id, quantity in lines.items():
                store.post(
                    f"{cart_path}/line-items", {"variant_id": variant_id, "quantity": quantity}
                )
            store.post(
                cart_path,
                {
                    "email": email,
                    "shipping_address": dict(address),
                    "billing_address": dict(address),
                },
            )
            store.post(f"{cart_path}/shipping-methods", {"option_id": self.shipping_option_id})
            collection = store.post("/store/payment-collections", {"cart_id": cart["id"]})
            collection_id = collection["payment_collection"]["id"]
            store.post(
                f"/store/payment-collections/{collection_id}/payment-sessions",
                {"provider_id": PAYMENT_PROVIDER},
            )
            placed = store.post(f"{cart_path}/complete")
        if placed.get("type") != "order":
            raise RuntimeError(f"the cart did not complete: {placed}")
        order: dict[str, Any] = placed["order"]
        return order

    def stop_server(self) -> None:
        self._server.stop()

    def start_server(self) -> None:
        self._server.start()


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def _read(names: tuple[str, ...]) -> list[str]:
    return [f"{name}\n{(PROJECT / name).read_text(encoding='utf-8')}" for name in names]


def node_tools(env: Mapping[str, str]) -> tuple[str, str]:
    """`node` and `npm`, installing the Debian packages if root may; a Node.js too old for
    Medusa is refused."""
    found = _find_node(env)
    if found is None and debian.can_install(env):
        debian.install(["nodejs", "npm"], env)
        found = _find_node(env)
    if found is None:
        raise MedusaUnavailable(NODE_MISSING)
    node, npm = found
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL
    ).stdout.strip()
    major, minor = (int(part) for part in version.lstrip("v").split(".")[:2])
    if major < 20 or minor < _NODE_MINIMUM.get(major, 0) or major == 21:
        raise MedusaUnavailable(f"Node.js {version} is too old for Medusa: {NODE_MISSING}")
    return node, npm


def _find_node(env: Mapping[str, str]) -> tuple[str, str] | None:
    node = shutil.which("node", path=env.get("PATH"))
    npm = shutil.which("npm", path=env.get("PATH"))
    return (node, npm) if node and npm else None


def _node_major(node: str) -> str:
    out = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL
    ).stdout
    return out.strip().lstrip("v").split(".")[0]


def modules_dir(env: Mapping[str, str], node: str) -> Path:
    return cache_dir(env) / f"medusa-npm-{_key(_node_major(node), *_read(_NPM_FILES))}"


def ensure_modules(env: Mapping[str, str], node: str, npm: str, log_path: Path) -> Path:
    """A directory with the project's package files and node_modules, installed on first use."""

    def install(staged: Path, scratch: Path) -> None:
        _log.info("installing Medusa %s's npm packages into %s", MEDUSA_VERSION, staged)
        staged.mkdir()
        for name in _NPM_FILES:
            shutil.copy(PROJECT / name, staged / name)
        started = time.monotonic()
        # No install script is needed (telemetry banner, esbuild and msgpackr checks); npm
        # takes what its own cache holds and asks the registry for the rest.
        with log_path.open("ab") as log:
            result = subprocess.run(
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefer-offline"],
                cwd=staged, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                timeout=_INSTALL_TIMEOUT_S, check=False,
                env={**env, "npm_config_update_notifier": "false"},
            )  # fmt: skip
        if result.returncode != 0:
            raise MedusaUnavailable(
                f"npm ci failed (exit {result.returncode}); registry.npmjs.org must be "
                f"reachable, log {log_path}:\n{log_tail(log_path)}"
            )
        _log.info("npm ci took %.1f s", time.monotonic() - started)

    return fill_cache_once(modules_dir(env, node), install, MedusaUnavailable)


def _default_spec() -> dict[str, Any]:
    return store_spec(Catalogue.default())


def template_dir(
    env: Mapping[str, str], modules: Path, pg_major: str, spec: Mapping[str, Any]
) -> Path:
    key = _key(
        modules.name,
        pg_major,
        json.dumps(spec, sort_keys=True),
        *_read(_PROJECT_FILES),
        _SEED_MODULE.read_text(encoding="utf-8"),
        ADMIN_EMAIL,
        ADMIN_PASSWORD,
        _PG_SUPERUSER,
    )
    return cache_dir(env) / f"medusa-pgdata-{key}"


def _project(run_dir: Path, modules: Path) -> Path:
    """The Medusa project for one run: its files copied, node_modules linked from the cache
    (Node resolves the link to the cache, so one copy of each package is loaded)."""
    app = run_dir / "app"
    for name in (*_NPM_FILES, *_PROJECT_FILES):
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT / name, app / name)
    (app / "node_modules").symlink_to(modules / "node_modules", target_is_directory=True)
    return app


def _medusa_env(
    env: Mapping[str, str], run_dir: Path, pg_port: int, database: str, webhook_url: str | None
) -> dict[str, str]:
    config = run_dir / "xdg-config"
    # Written before the first CLI call: without it the CLI prints its analytics banner and
    # `medusa start` forks a detached telemetry flusher that outlives the server's group.
    (config / "medusa").mkdir(parents=True, exist_ok=True)
    (config / "medusa" / "config.json").write_text(
        json.dumps({"telemetry": {"enabled": False}}), encoding="utf-8"
    )
    medusa_env = {
        name: value
        for name, value in env.items()
        if name not in ("REDIS_URL", "ERPBRIDGE_WEBHOOK_URL") and not name.startswith("MEDUSA_")
    }
    medusa_env.update(
        {
            # Host 127.0.0.1: Medusa turns SSL off only for localhost addresses.
            "DATABASE_URL": f"postgres://{_PG_SUPERUSER}@127.0.0.1:{pg_port}/{database}",
            "JWT_SECRET": secrets.token_hex(16),
            "COOKIE_SECRET": secrets.token_hex(16),
            "NODE_ENV": "production",
            "MEDUSA_DISABLE_TELEMETRY": "true",
            "XDG_CONFIG_HOME": str(config),
            "npm_config_update_notifier": "false",
        }
    )
    if webhook_url:
        medusa_env["ERPBRIDGE_WEBHOOK_URL"] = webhook_url
    return medusa_env


def _cli(node: str, app: Path) -> list[str]:
    return [node, str(app / "node_modules" / "@medusajs" / "cli" / "cli.js")]


def _run_cli(node: str, app: Path, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
    started = time.monotonic()
    with log_path.open("ab") as log:
        result = subprocess.run(
            [*_cli(node, app), *args],
            cwd=app, env=dict(env), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, timeout=_PREPARE_TIMEOUT_S, check=False,
        )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(
            f"medusa {args[0]} failed (exit {result.returncode}), "
            f"log {log_path}:\n{log_tail(log_path)}"
        )
    _log.info("medusa %s took %.1f s", args[0], time.monotonic() - started)


def ensure_template(
    env: Mapping[str, str], node: str, modules: Path, bin_dir: Path, log_path: Path
) -> Path:
    """A stopped PostgreSQL data dir holding the `medusa_template` database (migrated, the
    admin user, the seeded store) and seed.json (the store's ids)."""
    spec = _default_spec()
    target = template_dir(env, modules, pg_major(bin_dir), spec)

    def prepare(staged: Path, scratch: Path) -> None:
        _log.info("preparing the Medusa template database into %s", target)
        run_dir = new_run_dir("medusa")
        try:
            pg = Postgres(bin_dir, run_dir, log_path, _PG_SUPERUSER)
            pg.initdb()
            pg.start()
            try:
                pg.psql(f"CREATE DATABASE {_TEMPLATE_DATABASE}")
                app = _project(run_dir, modules)
                medusa_env = _medusa_env(env, run_dir, pg.port, _TEMPLATE_DATABASE, None)
                _run_cli(node, app, ["db:migrate"], medusa_env, log_path)
                _run_cli(
                    node, app, ["user", "-e", ADMIN_EMAIL, "-p", ADMIN_PASSWORD], medusa_env,
                    log_path,
                )  # fmt: skip
                server = _MedusaServer(node, app, medusa_env, free_ports(1)[0], log_path)
                try:
                    server.start()
                    started = time.monotonic()
                    with MedusaClient.admin(server.url, ADMIN_EMAIL, ADMIN_PASSWORD) as admin:
                        store = seed_store(admin, spec)
                    _log.info("seeding the store took %.1f s", time.monotonic() - started)
                finally:
                    server.stop()
            finally:
                pg.stop()
            shutil.copytree(pg.data, staged / "pgdata", symlinks=True)
            (staged / "seed.json").write_text(
                json.dumps(store.to_json(), indent=1), encoding="utf-8"
            )
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    return fill_cache_once(target, prepare, MedusaUnavailable)


@contextmanager
def running_medusa(
    *,
    env: Mapping[str, str] | None = None,
    keep_log: Callable[[], bool] | None = None,
    webhook_url: str | None = None,
) -> Iterator[Medusa]:
    """Yield a Medusa with a fresh copy of the seeded store; stop it and PostgreSQL on exit.

    `webhook_url` is where the project's subscriber POSTs every event (none when not given).
    `keep_log` is asked at stop time whether the log (Medusa, PostgreSQL, and on a first run
    npm, the migration and the seeding) is worth keeping.
    """
    env = os.environ if env is None else env
    try:
        bin_dir = postgres_bin(env)
    except PostgresUnavailable as exc:
        raise MedusaUnavailable(str(exc)) from None
    node, npm = node_tools(env)
    log_path = new_log(env, "medusa")
    ready = False

    def keep() -> bool:
        return not ready or (keep_log is not None and keep_log())

    with ExitStack() as stack:
        stack.callback(dispose_log, log_path, keep, "Medusa")
        modules = ensure_modules(env, node, npm, log_path)
        template = ensure_template(env, node, modules, bin_dir, log_path)
        store = SeededStore.from_json(
            json.loads((template / "seed.json").read_text(encoding="utf-8"))
        )
        run_dir = new_run_dir("medusa")
        stack.callback(shutil.rmtree, run_dir, True)
        pg = started_copy(
            stack, bin_dir, template / "pgdata", run_dir, log_path, _PG_SUPERUSER,
            (DATABASE, _TEMPLATE_DATABASE),
        )  # fmt: skip

        app = _project(run_dir, modules)
        medusa_env = _medusa_env(env, run_dir, pg.port, DATABASE, webhook_url)
        server = _MedusaServer(node, app, medusa_env, free_ports(1)[0], log_path)
        # Stopped before PostgreSQL (callbacks run last-in first-out).
        stack.callback(server.stop)
        atexit.register(server.stop)
        stack.callback(atexit.unregister, server.stop)
        server.start()
        ready = True
        yield Medusa(url=server.url, store=store, log_path=log_path, server=server, pg_port=pg.port)


def _wait_for_health(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"medusa exited with {process.returncode} while starting, "
                f"log {log_path}:\n{log_tail(log_path)}"
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"medusa not ready after {_START_TIMEOUT_S:.0f}s, log {log_path}")


def _descendants(pid: int) -> list[tuple[int, str]]:
    """pid's children, their children and so on, as /proc shows them now (Linux), each with
    its start time: a pid is only signalled later while it still names the same process."""
    found: list[tuple[int, str]] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend((child, _start_time(child)) for child in children)
            todo.extend(children)
    return found


def _start_time(pid: int) -> str:
    try:
        # Field 22 of stat, counted after the parenthesised command name, which may hold spaces.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, signum)


class _MedusaServer:
    """`medusa start` in its own process group, which may be stopped and started again on
    the same port."""

    def __init__(
        self, node: str, app: Path, env: Mapping[str, str], port: int, log_path: Path
    ) -> None:
        self.node = node
        self.app = app
        self.env = dict(env)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*_cli(self.node, self.app), "start", "-H", "127.0.0.1", "-p", str(self.port)],
                cwd=self.app, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            _wait_for_health(self.process, self.url, self.log_path)
        except BaseException:
            self.stop()
            raise
        _log.info("medusa ready at %s in %.1f s", self.url, time.monotonic() - started)

    def stop(self) -> None:
        """SIGTERM to the whole group (Medusa stops cleanly in well under a second), SIGKILL
        after the timeout; children that left the group (a detached telemetry flusher, should
        one start despite the configstore) are killed too."""
        process = self.process
        if process is None:
            return
        self.process = None
        strays = _descendants(process.pid) if process.poll() is None else []
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
        # The group's members that outlived its leader, then those that had left the group.
        _signal_group(process.pid, signal.SIGKILL)
        for pid, started in strays:
            if started and _start_time(pid) == started:
                with suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
