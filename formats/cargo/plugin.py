"""Registers the Cargo format (being written)."""
