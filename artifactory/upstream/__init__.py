"""The upstream HTTP client used by proxy repositories."""
