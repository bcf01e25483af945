"""A real Tryton ERP on PostgreSQL for development and tests.

Tryton comes from PyPI into a venv of its own under the cache dir, once per set of pinned
versions. PostgreSQL is a throwaway cluster from the machine's binaries (installed with apt
when running as root and they are missing): Tryton's accounting checks only hold there, on
SQLite `account.move.post` accepts an unbalanced move. The first run also prepares a cluster
holding a fully set-up database (modules, company, chart of accounts, fiscal years, the
sample catalogue's products, warehouses with their opening stock, customers) and keeps it in
the cache; every run copies that cluster and creates its database with `CREATE DATABASE ...
TEMPLATE`. trytond can be stopped and started again on the same port and database
(`Tryton.stop_server` / `start_server`), to play an ERP that is down for a while, and
serves further fresh copies of the prepared database (`Tryton.new_databases`), for runs
whose ERP must hold nothing but their own documents.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

from streams.local.jvm import (
    cache_dir,
    dispose_log,
    fill_cache_once,
    free_ports,
    log_tail,
    new_log,
    stop_process,
    tail,
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

# 8.0 is the LTS series. psycopg 3 (binary: no libpq headers needed) is trytond 8.0's PostgreSQL driver.
TRYTON_PINS = (
    "trytond==8.0.12",
    "trytond-sale==8.0.5",
    "trytond-stock==8.0.5",
    "trytond-account==8.0.4",
    "trytond-account-invoice==8.0.2",
    "trytond-product-price-list==8.0.0",
    "trytond-sale-price-list==8.0.0",
    "trytond-product-attribute==8.0.0",
    "proteus==8.0.0",
    "psycopg[binary,pool]==3.3.9",
)
MODULES = ("sale", "stock", "account", "account_invoice", "sale_price_list", "product_attribute")
"""sale_price_list: customers' contract prices (price lists); product_attribute: products'
attributes. erp.catalog carries both."""
ADMIN_LOGIN = "admin"
ADMIN_PASSWORD = "erpbridge-admin"
DATABASE = "erpbridge"
_TEMPLATE_DATABASE = "erpbridge_template"
_PG_SUPERUSER = "tryton"
_FINANCE = Path(__file__).resolve().parents[2] / "config" / "finance.json"
_SETUP_SCRIPT = Path(__file__).with_name("tryton_setup.py")
_INSTALL_TIMEOUT_S = 900.0
_PREPARE_TIMEOUT_S = 600.0
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 30.0


class TrytonUnavailable(RuntimeError):
    """No Tryton can be provided; the message says what to install."""


class Tryton:
    """A running trytond: JSON-RPC at `url` (`POST`, body `{"method", "params"}`).

    `stop_server` and `start_server` stop trytond and start it again on the same port with
    the same database (PostgreSQL keeps running): an ERP that is down for a while.
    """

    def __init__(
        self,
        *,
        url: str,
        database: str,
        login: str,
        password: str,
        log_path: Path,
        server: _Trytond,
        postgres: Postgres,
    ) -> None:
        self.url = url
        self.database = database
        self.login = login
        self.password = password
        self.postgres_port = postgres.port
        self.log_path = log_path
        self._server = server
        self._postgres = postgres

    def stop_server(self) -> None:
        self._server.stop()

    def start_server(self) -> None:
        self._server.start()

    def new_databases(self, names: Sequence[str]) -> list[Tryton]:
        """Fresh copies of the prepared database (master data, opening stock, no documents)
        on the same trytond and PostgreSQL, each a run's own ERP. trytond is restarted once
        to open them: trytond 8.0 serves only the databases named when it starts (for any
        other its cache registers an empty pool before login would initialise one, and
        every call fails with KeyError 'res.user')."""
        for name in names:
            self._postgres.psql(f'CREATE DATABASE "{name}" TEMPLATE {_TEMPLATE_DATABASE}')
        self._server.databases.extend(names)
        self._server.stop()
        self._server.start()
        return [
            Tryton(
                url=self.url.replace(f"/{self.database}/rpc/", f"/{name}/rpc/"),
                database=name,
                login=self.login,
                password=self.password,
                log_path=self.log_path,
                server=self._server,
                postgres=self._postgres,
            )
            for name in names
        ]


def _key(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def venv_dir(env: Mapping[str, str]) -> Path:
    return cache_dir(env) / f"tryton-venv-{_key(sys.version, *TRYTON_PINS)}"


def ensure_venv(env: Mapping[str, str]) -> Path:
    """Tryton's venv, installed with pip on first use."""

    def install(staged: Path, scratch: Path) -> None:
        _log.info("installing Tryton (%s) into %s", ", ".join(TRYTON_PINS), staged)
        # The venv is renamed into place afterwards, which breaks its scripts' shebangs:
        # scripts are therefore always run as `python <script>`.
        for args in (
            [sys.executable, "-m", "venv", str(staged)],
            [str(staged / "bin" / "python"), "-m", "pip", "install", "-q",
             "--disable-pip-version-check", *TRYTON_PINS],
        ):  # fmt: skip
            result = subprocess.run(
                args, capture_output=True, text=True, timeout=_INSTALL_TIMEOUT_S, check=False,
                stdin=subprocess.DEVNULL, cwd=scratch,
            )  # fmt: skip
            if result.returncode != 0:
                raise TrytonUnavailable(
                    f"installing Tryton failed (exit {result.returncode}); PyPI must be "
                    "reachable:\n" + tail(result.stdout + result.stderr)
                )

    return fill_cache_once(venv_dir(env), install, TrytonUnavailable)


def setup_spec(catalogue: Catalogue, finance: Mapping[str, Any], today: date) -> dict[str, Any]:
    """What tryton_setup.py creates: the catalogue's master data, the finance accounts and
    the opening stock (every SKU's target stock in every warehouse)."""

    def kind(code: str) -> str:
        if code == "1200":
            return "receivable"
        if code == "1300":
            return "stock"
        return {"1": "asset", "2": "liability", "4": "revenue"}.get(code[0], "expense")

    templates = finance["templates"]
    rates = finance["exchange_rates"]["rates"]
    return {
        "company": "erpbridge sample shop",
        "currency": finance["functional_currency"],
        "accounts": {
            code: {"name": name, "kind": kind(code)} for code, name in finance["accounts"].items()
        },
        "revenue_account": templates["sale"]["credit"]["merchandise"],
        "expense_account": templates["cogs"]["debit"]["cogs"],
        "fiscal_years": [today.year - 1, today.year, today.year + 1],
        # Before anything the sample or a test does: the opening stock's date.
        "opening_date": date(today.year - 1, 1, 1).isoformat(),
        # Tryton's rate is foreign units per company unit; the mapping has the inverse.
        "currencies": {
            code: {
                day: str((Decimal(1) / Decimal(per_unit)).quantize(Decimal("0.000001")))
                for day, per_unit in rates[code].items()
            }
            for code in catalogue.currencies
            if code != finance["functional_currency"] and code in rates
        },
        "skus": [
            {
                "code": sku.code,
                "name": sku.name,
                "list_price": str(sku.price(catalogue.base_currency)),
                "cost_price": str(sku.unit_cost),
                # The sample's first events are ERP snapshots of this on-hand everywhere.
                "target_stock": sku.target_stock,
            }
            for sku in catalogue.skus
        ],
        "warehouses": [{"code": w.warehouse_id, "name": w.name} for w in catalogue.warehouses],
        "customers": [
            {
                "code": c.customer_id,
                "name": c.name,
                "email": c.email,
                "street": c.address.line1,
                "city": c.address.city,
                "postal_code": c.address.postal_code,
            }
            for c in catalogue.customers
        ],
    }


def _default_spec() -> dict[str, Any]:
    finance = json.loads(_FINANCE.read_text(encoding="utf-8"))
    return setup_spec(Catalogue.default(), finance, date.today())


def template_dir(env: Mapping[str, str], pg_major: str, spec: Mapping[str, Any]) -> Path:
    key = _key(
        *TRYTON_PINS,
        *MODULES,
        pg_major,
        json.dumps(spec, sort_keys=True),
        _SETUP_SCRIPT.read_text(),
    )
    return cache_dir(env) / f"tryton-pgdata-{key}"


def _trytond_conf(run_dir: Path, pg_port: int, web_port: int) -> Path:
    conf = run_dir / "trytond.conf"
    conf.write_text(
        "[database]\n"
        f"uri = postgresql://{_PG_SUPERUSER}@127.0.0.1:{pg_port}/\n"
        f"path = {run_dir / 'filestore'}\n"
        "[web]\n"
        f"listen = 127.0.0.1:{web_port}\n"
        "[session]\n"
        "timeout = 3600\n",
        encoding="utf-8",
    )
    return conf


def _run_in_venv(venv: Path, args: list[str], log_path: Path, extra_env: Mapping[str, str]) -> None:
    started = time.monotonic()
    with log_path.open("ab") as log:
        result = subprocess.run(
            [str(venv / "bin" / "python"), *args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            timeout=_PREPARE_TIMEOUT_S, check=False, env={**os.environ, **extra_env},
        )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(Path(a).name for a in args[:2])} failed (exit {result.returncode}), "
            f"log {log_path}:\n{log_tail(log_path)}"
        )
    # The first run's cost is mostly these steps: worth seeing where it goes.
    _log.info("%s took %.1f s", Path(args[0]).name, time.monotonic() - started)


def ensure_template(env: Mapping[str, str], venv: Path, bin_dir: Path, log_path: Path) -> Path:
    """A stopped PostgreSQL data dir holding the prepared `erpbridge_template` database."""
    spec = _default_spec()
    target = template_dir(env, pg_major(bin_dir), spec)

    def prepare(staged: Path, scratch: Path) -> None:
        _log.info("preparing the Tryton template database into %s", target)
        run_dir = new_run_dir("tryton")
        try:
            pg = Postgres(bin_dir, run_dir, log_path, _PG_SUPERUSER)
            pg.initdb()
            pg.start()
            try:
                pg.psql(f"CREATE DATABASE {_TEMPLATE_DATABASE}")
                conf = _trytond_conf(run_dir, pg.port, free_ports(1)[0])
                passfile = scratch / "password"
                passfile.write_text(ADMIN_PASSWORD, encoding="utf-8")
                _run_in_venv(
                    venv,
                    [str(venv / "bin" / "trytond-admin"), "-c", str(conf),
                     "-d", _TEMPLATE_DATABASE, "--all", "--activate-dependencies",
                     "--email", "admin@example.com", "-u", *MODULES],
                    log_path, {"TRYTONPASSFILE": str(passfile)},
                )  # fmt: skip
                spec_path = scratch / "spec.json"
                spec_path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
                _run_in_venv(
                    venv,
                    [
                        str(_SETUP_SCRIPT),
                        str(conf),
                        f"postgresql://{_PG_SUPERUSER}@127.0.0.1:{pg.port}/{_TEMPLATE_DATABASE}",
                        str(spec_path),
                    ],
                    log_path,
                    {},
                )
            finally:
                pg.stop()
            shutil.copytree(pg.data, staged / "pgdata", symlinks=True)
            shutil.copy(spec_path, staged / "spec.json")
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    return fill_cache_once(target, prepare, TrytonUnavailable)


def _wait_for_trytond(process: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    body = json.dumps({"id": 0, "method": "common.server.version", "params": []}).encode()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"trytond exited with {process.returncode} while starting, "
                f"log {log_path}:\n{log_tail(log_path)}"
            )
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if "result" in cast(dict[str, Any], json.load(response)):
                    return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"trytond not ready after {_START_TIMEOUT_S:.0f}s, log {log_path}")


@contextmanager
def running_tryton(
    *, env: Mapping[str, str] | None = None, keep_log: Callable[[], bool] | None = None
) -> Iterator[Tryton]:
    """Yield a trytond with a fresh copy of the prepared database; stop it and PostgreSQL on exit.

    `keep_log` is asked at stop time whether the log (trytond, PostgreSQL, and on a first
    run the install and preparation) is worth keeping.
    """
    env = os.environ if env is None else env
    try:
        bin_dir = postgres_bin(env)
    except PostgresUnavailable as exc:
        raise TrytonUnavailable(str(exc)) from exc
    venv = ensure_venv(env)
    log_path = new_log(env, "tryton")
    ready = False

    def keep() -> bool:
        return not ready or (keep_log is not None and keep_log())

    with ExitStack() as stack:
        stack.callback(dispose_log, log_path, keep, "Tryton")
        template = ensure_template(env, venv, bin_dir, log_path)
        run_dir = new_run_dir("tryton")
        stack.callback(shutil.rmtree, run_dir, True)
        pg = started_copy(
            stack, bin_dir, template / "pgdata", run_dir, log_path, _PG_SUPERUSER,
            (DATABASE, _TEMPLATE_DATABASE),
        )  # fmt: skip

        web_port = free_ports(1)[0]
        conf = _trytond_conf(run_dir, pg.port, web_port)
        base = f"http://127.0.0.1:{web_port}"
        server = _Trytond(venv, conf, f"{base}/rpc/", log_path)
        # Stopped before PostgreSQL (callbacks run last-in first-out).
        stack.callback(server.stop)
        atexit.register(server.stop)
        stack.callback(atexit.unregister, server.stop)
        server.start()
        ready = True
        yield Tryton(
            url=f"{base}/{DATABASE}/rpc/",
            database=DATABASE,
            login=ADMIN_LOGIN,
            password=ADMIN_PASSWORD,
            log_path=log_path,
            server=server,
            postgres=pg,
        )


class _Trytond:
    """The trytond process, which may be stopped and started again on the same port."""

    def __init__(self, venv: Path, conf: Path, probe_url: str, log_path: Path) -> None:
        self.venv = venv
        self.conf = conf
        self.probe_url = probe_url
        self.log_path = log_path
        self.databases = [DATABASE]
        """What trytond opens at start, and so all it serves."""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.venv / "bin" / "python"), str(self.venv / "bin" / "trytond"),
                 "-c", str(self.conf), "-d", *self.databases],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        _wait_for_trytond(self.process, self.probe_url, self.log_path)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, _STOP_TIMEOUT_S)
