"""lifecycle checks: dossier, history, reminder, hand-off reply and attempt statuses

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 09:00:00.000000

The allowed values come from `bot.core.lifecycles` (the enums are their single source), so this
file adds exactly the constraints the models declare. The values are today's strings: no data
changes. Existing rows outside the lifecycle stop the upgrade with a list of them.

SQLite has no ALTER TABLE … ADD CONSTRAINT: batch mode copies each table and drops the old
one. With foreign keys on, dropping `dossiers` would first delete its history and unlink its
consents, ratings and drafts, so foreign keys are switched off around the copies (that pragma
only works outside a transaction) and checked once the copies are done.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

from bot.core.lifecycles import ATTEMPT, DOSSIER, HANDOFF_REPLY, REMINDER, Lifecycle

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# (table, column, lifecycle); constraint names follow bot.core.models.NAMING (ck_<table>_<column>).
CHECKS: tuple[tuple[str, str, Lifecycle], ...] = (
    ("dossiers", "status", DOSSIER),
    ("dossier_status_history", "status", DOSSIER),
    ("reminders", "state", REMINDER),
    ("handoff_replies", "status", HANDOFF_REPLY),
    ("delivery_attempts", "outcome", ATTEMPT),
)


def _set_sqlite_foreign_keys(on: bool) -> None:
    """Outside any transaction on the driver's connection: the pragma is a no-op inside one,
    and every SQLAlchemy unit of work (and alembic's autocommit block) starts one here."""
    with op.get_context().autocommit_block():
        raw = op.get_bind().connection.dbapi_connection
        if raw.in_transaction:
            raw.execute("COMMIT")
        raw.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


@contextmanager
def _tables_rebuilt_safely() -> Iterator[None]:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite" or op.get_context().as_sql:
        yield
        return
    was_on = bool(bind.exec_driver_sql("PRAGMA foreign_keys").scalar())
    _set_sqlite_foreign_keys(False)
    # On an error the copies roll back with the migration's transaction, and the connection
    # (foreign keys still off) is closed with env.py's engine: re-enabling here would commit.
    yield
    broken = bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"foreign keys broken by the table copies: {broken[:10]}")
    if was_on:
        _set_sqlite_foreign_keys(True)  # commits the copies; alembic then records the revision


def _refuse_unknown_values() -> None:
    if op.get_context().as_sql:
        return  # offline (--sql): no rows to look at
    bind = op.get_bind()
    unknown = []
    for table, column, lifecycle in CHECKS:
        values = [s.value for s in lifecycle.states]
        found = bind.execute(
            sa.select(sa.column(column))
            .select_from(sa.table(table, sa.column(column)))
            .where(sa.column(column).not_in(values))
            .distinct()
        ).scalars()
        unknown += [f"{table}.{column} = {value!r}" for value in found]
    if unknown:
        raise RuntimeError("values outside their lifecycle: " + ", ".join(unknown))


def upgrade() -> None:
    _refuse_unknown_values()
    with _tables_rebuilt_safely():
        for table, column, lifecycle in CHECKS:
            with op.batch_alter_table(table, schema=None) as batch_op:
                batch_op.create_check_constraint(
                    op.f(f"ck_{table}_{column}"), lifecycle.check_sql(column)
                )


def downgrade() -> None:
    with _tables_rebuilt_safely():
        for table, column, _ in reversed(CHECKS):
            with op.batch_alter_table(table, schema=None) as batch_op:
                batch_op.drop_constraint(op.f(f"ck_{table}_{column}"), type_="check")
