"""Registers the npm format."""
