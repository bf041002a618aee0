"""Registers the maven format."""
