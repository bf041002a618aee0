"""Registers the pypi format and its `artifactory pypi` subcommands."""

from __future__ import annotations

import argparse

from artifactory_formats.pypi import cli
from artifactory_formats.pypi.format import PypiFormat

from artifactory.plugin import FormatRegistry, hookimpl


@hookimpl
def artifactory_register_formats(registry: FormatRegistry) -> None:
    registry.add(PypiFormat())


@hookimpl
def artifactory_register_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cli.register(subparsers)
