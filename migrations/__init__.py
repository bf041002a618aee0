"""The one alembic history of the metadata database."""
