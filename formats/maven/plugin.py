"""Registers the maven format."""

from __future__ import annotations

from artifactory_formats.maven.format import MavenFormat

from artifactory.plugin import FormatRegistry, hookimpl


@hookimpl
def artifactory_register_formats(registry: FormatRegistry) -> None:
    registry.add(MavenFormat())
