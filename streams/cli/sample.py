"""Placeholder until this verb lands."""
