"""Webhooks: signed JSON POSTs on asset, component and repository events, from a durable outbox.

Built in (registered through the `artifactory` entry-point group, as a third party would register it)
and inert until the `webhooks` setting lists at least one webhook. docs/webhooks.md is the reference.
"""
