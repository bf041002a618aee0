"""The maven format."""
