"""Registers the npm format."""

from __future__ import annotations

from artifactory_formats.npm.format import NpmFormat

from artifactory.plugin import FormatRegistry, hookimpl


@hookimpl
def artifactory_register_formats(registry: FormatRegistry) -> None:
    registry.add(NpmFormat())
