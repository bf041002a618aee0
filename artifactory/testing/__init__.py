"""Test support: the live-server pytest plugin and the blob driver conformance suite."""
