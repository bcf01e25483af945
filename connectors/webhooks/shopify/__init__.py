"""Shopify: orders, fulfilments, refunds, transactions and inventory levels."""
