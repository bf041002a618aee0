"""Registers the oci format."""
