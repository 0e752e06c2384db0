"""lookup_attempts: failed status lookups by dossier code, for the per-sender and per-code limits

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 09:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lookup_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sender_digest", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=24), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lookup_attempts")),
    )
    op.create_index(op.f("ix_lookup_attempts_created_at"), "lookup_attempts", ["created_at"])
    op.create_index("ix_lookup_attempts_sender", "lookup_attempts", ["sender_digest", "created_at"])
    op.create_index("ix_lookup_attempts_code", "lookup_attempts", ["code", "created_at"])


def downgrade() -> None:
    op.drop_table("lookup_attempts")
