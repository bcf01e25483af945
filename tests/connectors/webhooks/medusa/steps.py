"""What a shopper and a merchant do in the live Medusa's admin, as the Medusa tests need it."""

from __future__ import annotations

from streams.local.medusa import Medusa


def payment_id(medusa: Medusa, order_id: str) -> str:
    """The id of the order's payment (a store checkout makes one)."""
    with medusa.admin() as admin:
        order = admin.get(
            f"/admin/orders/{order_id}", {"fields": "id,*payment_collections.payments"}
        )
    return str(order["order"]["payment_collections"][0]["payments"][0]["id"])


def receive_return(medusa: Medusa, order_id: str, sku: str, sound: int, damaged: int) -> None:
    """The shopper sends `sound + damaged` units of `sku` back; the merchant receives them."""
    with medusa.admin() as admin:
        order = admin.get(f"/admin/orders/{order_id}", {"fields": "id,*items"})["order"]
        (item,) = [i for i in order["items"] if i["variant_sku"] == sku]
        made = admin.post(
            "/admin/returns", {"order_id": order_id, "location_id": medusa.stock_location_id}
        )
        path = f"/admin/returns/{made['return']['id']}"
        admin.post(
            f"{path}/request-items", {"items": [{"id": item["id"], "quantity": sound + damaged}]}
        )
        admin.post(f"{path}/request", {})
        admin.post(f"{path}/receive", {})
        if sound:
            admin.post(f"{path}/receive-items", {"items": [{"id": item["id"], "quantity": sound}]})
        if damaged:
            admin.post(
                f"{path}/dismiss-items", {"items": [{"id": item["id"], "quantity": damaged}]}
            )
        admin.post(f"{path}/receive/confirm", {})
