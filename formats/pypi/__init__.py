"""The pypi format."""
