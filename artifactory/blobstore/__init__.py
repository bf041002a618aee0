"""Content-addressed blob storage: the driver protocol, digests, layout, drivers and GC."""
