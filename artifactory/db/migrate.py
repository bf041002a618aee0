"""Alembic, driven from code: `artifactory db upgrade` and `serve` call upgrade()."""

from __future__ import annotations

from pathlib import Path

import artifactory_migrations
from alembic import command
from alembic.config import Config


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(artifactory_migrations.__file__).parent))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)
