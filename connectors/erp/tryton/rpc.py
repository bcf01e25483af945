"""An async JSON-RPC client for Tryton (8.x: `POST /<database>/rpc/`).

One login per client (logins are costly in Tryton: ~190 ms and a password hash each), the
session in `Authorization: Session base64(login:user_id:token)`, and the user's preferences
as the context every model call ends with (Tryton requires it, with the company). Errors are
mapped to the adapter's: whatever a retry may fix is a TransientError, the rest permanent.
"""

from __future__ import annotations

import base64
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import httpx

from connectors.erp.adapter import PermanentError, TransientError
from connectors.erp.http import retry_after

# Tryton's error names (and database messages) that mean "someone else held the row".
_TRANSIENT_NAMES = frozenset({"ConcurrencyException", "RateLimitException"})
_TRANSIENT_MARKERS = (
    "could not serialize",
    "deadlock",
    "could not obtain lock",
    "lock not available",
    "concurrent update",
    "databaseoperationalerror",
)


def encode(value: object) -> Any:
    """`json.dumps` default: Tryton's tagged objects for Decimal, datetime and date."""
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, datetime):
        return {
            "__class__": "datetime",
            "year": value.year, "month": value.month, "day": value.day,
            "hour": value.hour, "minute": value.minute, "second": value.second,
            "microsecond": value.microsecond,
        }  # fmt: skip
    if isinstance(value, date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    raise TypeError(f"not JSON-RPC encodable: {value!r}")


def decode(obj: dict[str, Any]) -> Any:
    """`json.loads` object hook, the inverse of `encode`."""
    kind = obj.get("__class__")
    if kind == "Decimal":
        return Decimal(obj["decimal"])
    if kind == "datetime":
        return datetime(
            obj["year"], obj["month"], obj["day"],
            obj["hour"], obj["minute"], obj["second"], obj["microsecond"],
        )  # fmt: skip
    if kind == "date":
        return date(obj["year"], obj["month"], obj["day"])
    return obj


def rpc_error(error: Any) -> PermanentError | TransientError:
    """The adapter error for a JSON-RPC `error` member: `[name, payload]` or `[message, traceback]`."""
    name = str(error[0]) if isinstance(error, list | tuple) and error else str(error)
    payload = error[1] if isinstance(error, list | tuple) and len(error) > 1 else None
    if isinstance(payload, list | tuple) and payload and isinstance(payload[0], str):
        # UserError: (message, description, domain); UserWarning: (key, message, description).
        parts = payload[1:2] if name == "UserWarning" else payload[:2]
        message = " ".join(str(p) for p in parts if p) or name
    elif isinstance(payload, str) and payload and name[:1].isupper() and " " not in name:
        message = payload
    else:
        # An internal error: its message is the name; the payload is a traceback.
        message = name
    lowered = f"{name} {message}".lower()
    if name in _TRANSIENT_NAMES or any(marker in lowered for marker in _TRANSIENT_MARKERS):
        return TransientError("concurrency", message)
    if name == "UserWarning" and isinstance(payload, list | tuple) and payload:
        return TrytonWarning(str(payload[0]), message)
    code = name if name.isidentifier() else "server-error"
    return PermanentError(code, message)


class TrytonWarning(PermanentError):
    """A Tryton warning: the user would be asked to confirm; `key` names it for skipping."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__("UserWarning", message)
        self.key = key


class TrytonRpc:
    """A logged-in session on one Tryton database."""

    def __init__(
        self,
        url: str,
        login: str,
        password: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.login = login
        self._password = password
        self._http = httpx.AsyncClient(
            timeout=timeout, transport=transport, headers={"Content-Type": "application/json"}
        )
        self._ids = 0
        self._session: str | None = None
        self.context: dict[str, Any] = {}

    async def open(self) -> None:
        await self._login()

    async def close(self) -> None:
        await self._http.aclose()

    async def _login(self) -> None:
        self._session = None
        result = await self._post(
            "common.db.login", [self.login, {"password": self._password}, "en"]
        )
        if not isinstance(result, list) or len(result) < 2:
            raise PermanentError("login-failed", f"Tryton refused the login of {self.login!r}")
        user_id, token = result[:2]
        credentials = f"{self.login}:{user_id}:{token}".encode()
        self._session = base64.b64encode(credentials).decode()
        preferences = await self._post("model.res.user.get_preferences", [True, {}])
        self.context = dict(preferences)

    async def call(self, method: str, *params: Any) -> Any:
        """A raw call; logs in first if needed and once more when the session expired."""
        if self._session is None:
            await self._login()
        try:
            return await self._post(method, list(params))
        except _SessionExpired:
            await self._login()
        try:
            return await self._post(method, list(params))
        except _SessionExpired as expired:
            raise PermanentError("unauthorized", "Tryton refused a fresh session") from expired

    async def model(
        self, model: str, method: str, *args: Any, context: dict[str, Any] | None = None
    ) -> Any:
        """`model.<model>.<method>(*args, context)`: the user's context, updated by `context`."""
        if self._session is None:
            await self._login()  # the context comes with the session
        return await self.call(
            f"model.{model}.{method}", *args, {**self.context, **(context or {})}
        )

    async def confirming(self, model: str, method: str, ids: list[int]) -> Any:
        """A button whose warnings are acknowledged, as a user answering "yes" would."""
        for _ in range(3):
            try:
                return await self.model(model, method, ids)
            except TrytonWarning as warning:
                await self.model("res.user.warning", "skip", warning.key, False)
        return await self.model(model, method, ids)

    async def search_read(
        self,
        model: str,
        domain: list[Any],
        fields: list[str],
        *,
        order: list[list[str]] | None = None,
        limit: int | None = None,
        context: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.model(
            model, "search_read", domain, 0, limit, order, fields, context=context
        )
        return result

    async def create(self, model: str, values: list[dict[str, Any]]) -> list[int]:
        return [int(i) for i in await self.model(model, "create", values)]

    async def _post(self, method: str, params: list[Any]) -> Any:
        self._ids += 1
        body = json.dumps({"id": self._ids, "method": method, "params": params}, default=encode)
        headers = {"Authorization": f"Session {self._session}"} if self._session else {}
        try:
            response = await self._http.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise TransientError("timeout", f"{method}: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise TransientError("unreachable", f"{method}: {exc!r}") from exc
        status = response.status_code
        if status == 401 and self._session is not None:
            raise _SessionExpired(method)
        if status == 429 or status >= 500:
            raise TransientError(
                f"http-{status}",
                f"{method}: {response.text[:200]}",
                retry_after(response.headers.get("Retry-After")),
            )
        if status >= 400:
            raise PermanentError(f"http-{status}", f"{method}: {response.text[:200]}")
        answer = json.loads(response.content, object_hook=decode)
        if answer.get("error"):
            raise rpc_error(answer["error"])
        return answer.get("result")


class _SessionExpired(Exception):
    """HTTP 401 on a call made with a session: log in again."""
