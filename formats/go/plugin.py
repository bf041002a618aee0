"""Registers the Go modules format (being written)."""
