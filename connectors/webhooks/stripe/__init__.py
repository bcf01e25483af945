"""Stripe: payment intents and refunds."""
