"""Hosted, proxy and group behaviour, written once for every format."""
