"""Built-in non-format plugins."""
