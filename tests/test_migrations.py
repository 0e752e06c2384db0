"""The migrations build exactly the schema the models describe, on both engines."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from bot.core.migrate import alembic_config
from bot.core.models import Base


def test_migrated_schema_matches_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_scan_columns_are_indexed(engine: Engine) -> None:
    indexed = {tuple(ix["column_names"]) for ix in inspect(engine).get_indexes("records")}
    assert ("kind", "valid_until") in indexed and ("kind", "event_date") in indexed


def test_downgrade_and_upgrade_round_trip(db_url: str, engine: Engine) -> None:
    cfg = alembic_config(db_url)
    command.downgrade(cfg, "base")
    assert "citizens" not in inspect(engine).get_table_names()
    command.upgrade(cfg, "head")
    assert "citizens" in inspect(engine).get_table_names()
