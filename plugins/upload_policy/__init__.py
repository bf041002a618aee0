"""Example non-format plugin: an upload policy (deny patterns, size limit) and an audit log of events.

Enable it with `ARTIFACTORY_PLUGINS=artifactory_plugins.upload_policy.plugin`; see plugin.py for its
environment variables and docs/plugins.md for the hooks it implements.
"""
