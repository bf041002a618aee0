"""The raw format: any file at any path."""
