"""Registers the pypi format."""
