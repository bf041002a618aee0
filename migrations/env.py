from __future__ import annotations

from alembic import context
from artifactory_plugins.webhooks.outbox import metadata as webhook_metadata
from sqlalchemy import create_engine

from artifactory.db.models import Base

config = context.config
# Every table the one alembic history creates: the engine's models and the built-in plugins' own.
target_metadata = [Base.metadata, webhook_metadata]
url = config.get_main_option("sqlalchemy.url")
assert url


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
