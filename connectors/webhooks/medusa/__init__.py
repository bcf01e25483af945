"""Medusa 2: its orders and payments, read through its Admin API (it sends no webhooks)."""
