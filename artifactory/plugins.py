"""The plugin manager: hook specifications plus every plugin found.

Plugins come from the `artifactory` entry-point group (the built-in formats register themselves
that way, exactly as a third-party format would) and from module names in the `plugins` setting.
The built-in security plugin is registered first so that pluggy calls it last in the chain.
"""

from __future__ import annotations

import importlib

import pluggy

from artifactory import hookspecs

ENTRY_POINT_GROUP = "artifactory"
CORE_PLUGINS = (
    "artifactory.security.builtin",
    "artifactory.audit",
    "artifactory.metrics",
    "artifactory.transfer",
    "artifactory.cleanup",
)


def plugin_manager(extra_modules: list[str] | None = None) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("artifactory")
    pm.add_hookspecs(hookspecs)
    for name in CORE_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    for name in extra_modules or []:
        module = importlib.import_module(name)
        if not pm.is_registered(module):
            pm.register(module, name=name)
    return pm
