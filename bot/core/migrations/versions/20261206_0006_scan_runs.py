"""scan_runs: the scheduler's progress in its own table (it was read from the audit log)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 01:05:00
"""

import datetime as dt

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scan_runs",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("created", sa.JSON(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_scan_runs")),
    )
    # Days already scanned stay scanned: the newest one decides where catch-up starts.
    audit = sa.table(
        "audit_log",
        sa.column("actor", sa.String),
        sa.column("action", sa.String),
        sa.column("target_id", sa.String),
        sa.column("created_at", sa.DateTime),
    )
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(audit.c.target_id, sa.func.max(audit.c.created_at))
        .where(audit.c.actor == "scheduler", audit.c.action == "scan")
        .group_by(audit.c.target_id)
    ).all()
    runs = sa.table(
        "scan_runs",
        sa.column("day", sa.Date),
        sa.column("created", sa.JSON),
        sa.column("finished_at", sa.DateTime),
    )
    values = []
    for day, finished in rows:
        try:
            values.append(
                {"day": dt.date.fromisoformat(day), "created": {}, "finished_at": finished}
            )
        except (TypeError, ValueError):
            continue
    if values:
        op.bulk_insert(runs, values)


def downgrade() -> None:
    op.drop_table("scan_runs")
