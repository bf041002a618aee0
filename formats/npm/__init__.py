"""The npm format."""
