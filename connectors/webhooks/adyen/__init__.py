"""Adyen: standard payment notifications."""
