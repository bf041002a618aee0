"""Cargo: the sparse registry protocol (hosted, proxy, group)."""
