"""Admin API: /api/v1/*."""
