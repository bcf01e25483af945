"""Which adapter speaks to which ERP: one factory per target name, the only place to add one."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from connectors.erp.adapter import ErpAdapter
from connectors.erp.http import ProtectingTransport
from connectors.erp.master import MasterDataReader
from connectors.erp.retry import Backoff
from streams.ops.settings import Settings

if TYPE_CHECKING:
    from connectors.erp.tryton import TrytonAdapter


def _tryton(settings: Settings) -> TrytonAdapter:
    from connectors.erp.tryton import TrytonAdapter

    password = settings.erp_password
    return TrytonAdapter(
        _required(settings.erp_url, "ERPBRIDGE_ERP_URL"),
        settings.erp_login,
        _required(password.get_secret_value() if password else None, "ERPBRIDGE_ERP_PASSWORD"),
        timeout=settings.erp_timeout_seconds,
        transport=protecting_transport(settings, TrytonAdapter.name),
    )


def protecting_transport(settings: Settings, target: str) -> ProtectingTransport:
    """The request-level protection of an HTTP adapter, from the target's settings."""
    return ProtectingTransport(
        settings.erp_max_in_flight.get(target, 1), Backoff.from_settings(settings)
    )


def _tryton_master_data(settings: Settings) -> MasterDataReader:
    from connectors.erp.tryton.master import TrytonMasterData

    return TrytonMasterData(_tryton(settings).rpc)


ADAPTERS: dict[str, Callable[[Settings], ErpAdapter]] = {"tryton": _tryton}
READERS: dict[str, Callable[[Settings], MasterDataReader]] = {"tryton": _tryton_master_data}


def adapter_for(settings: Settings, target: str | None = None) -> ErpAdapter:
    """The adapter for `target` (default: the settings' erp_target), configured from settings."""
    name = target or settings.erp_target
    factory = ADAPTERS.get(name)
    if factory is None:
        raise ValueError(f"no ERP adapter named {name!r}; known: {', '.join(sorted(ADAPTERS))}")
    return factory(settings)


def reader_for(settings: Settings) -> MasterDataReader:
    """The master-data reader of the settings' erp_target, configured from settings."""
    factory = READERS.get(settings.erp_target)
    if factory is None:
        raise ValueError(
            f"no master-data reader for ERP {settings.erp_target!r}; known: "
            f"{', '.join(sorted(READERS))}"
        )
    return factory(settings)


def _required(value: str | None, variable: str) -> str:
    if not value:
        raise ValueError(f"{variable} is not set")
    return value
