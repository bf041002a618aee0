"""The oci format."""
