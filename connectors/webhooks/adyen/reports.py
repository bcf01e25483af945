"""A settlement report read from Adyen's report download, with the route's report user:
what a REPORT_AVAILABLE notification only names.

GET <admin_url>/<file>, where the route's admin_url is the merchant account's report
folder (https://ca-live.adyen.com/reports/download/MerchantAccount/<account>), with
basic authentication as the report user ("report@Company.<company>:<password>" in
ERPBRIDGE_WEBHOOK_ADMIN_TOKENS). The URL is the route's, never the notification's: a
notification can only choose which of that account's reports is read."""

from __future__ import annotations

import httpx

from connectors.webhooks.inputs import Unavailable


class AdyenReportError(Unavailable):
    """Adyen did not serve the report now: the notification gets a 503 and comes again."""


async def download(client: httpx.AsyncClient, folder: str, token: str, file_name: str) -> str:
    user, _, password = token.partition(":")
    try:
        response = await client.get(f"{folder.rstrip('/')}/{file_name}", auth=(user, password))
    except httpx.HTTPError as error:
        raise AdyenReportError(f"downloading {file_name}: {error!r}") from None
    if response.status_code != 200:
        raise AdyenReportError(f"downloading {file_name}: Adyen answered {response.status_code}")
    return response.text
