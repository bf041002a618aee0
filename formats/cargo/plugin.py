"""Registers the Cargo format, exactly as a third-party format would register itself."""

from __future__ import annotations

from artifactory_formats.cargo.format import CargoFormat

from artifactory.plugin import FormatRegistry, hookimpl


@hookimpl
def artifactory_register_formats(registry: FormatRegistry) -> None:
    registry.add(CargoFormat())
