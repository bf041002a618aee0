"""Moving data: `artifactory export`, `artifactory import` and `artifactory backup` (owned by the
transfer work; registered as a core plugin through `artifactory_register_commands`)."""

from __future__ import annotations
