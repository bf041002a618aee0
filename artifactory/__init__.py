"""A self-hosted artifact repository: one server for pip, npm, mvn and container clients."""

__version__ = "0.1.0"
