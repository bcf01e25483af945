"""Tryton as erpbridge's ERP: `TrytonAdapter` (adapter.py) over an async JSON-RPC client (rpc.py)."""

from connectors.erp.tryton.adapter import TrytonAdapter

__all__ = ["TrytonAdapter"]
