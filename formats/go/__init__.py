"""Go modules: the GOPROXY protocol (hosted, proxy, group)."""
