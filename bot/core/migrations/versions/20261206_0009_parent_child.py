"""parent_child and consents.acting_for_citizen_id: parents acting for their minor children

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 10:00:00

`parent_child` holds who the population data names as a child's father, mother or guardian
(import kind `parent_child`). A consent given by a parent for a child keeps the parent in
`citizen_id` and the child in the new `acting_for_citizen_id`. On SQLite the consents table is
copied to add the foreign key; nothing references it, so the copy deletes nothing.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parent_child",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.Integer(), nullable=False),
        sa.Column("relation", sa.String(length=10), nullable=False),
        sa.Column("ended_on", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("parent_id <> child_id", name=op.f("ck_parent_child_not_self")),
        sa.CheckConstraint(
            "relation IN ('cha', 'me', 'giam_ho')", name=op.f("ck_parent_child_relation")
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["citizens.id"],
            name=op.f("fk_parent_child_parent_id_citizens"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["citizens.id"],
            name=op.f("fk_parent_child_child_id_citizens"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_parent_child")),
        sa.UniqueConstraint("parent_id", "child_id", name="uq_parent_child_pair"),
    )
    op.create_index(op.f("ix_parent_child_parent_id"), "parent_child", ["parent_id"])
    op.create_index(op.f("ix_parent_child_child_id"), "parent_child", ["child_id"])
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acting_for_citizen_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_consents_acting_for_citizen_id_citizens"),
            "citizens",
            ["acting_for_citizen_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index(
            batch_op.f("ix_consents_acting_for_citizen_id"), ["acting_for_citizen_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("consents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consents_acting_for_citizen_id"))
        batch_op.drop_constraint(
            batch_op.f("fk_consents_acting_for_citizen_id_citizens"), type_="foreignkey"
        )
        batch_op.drop_column("acting_for_citizen_id")
    op.drop_table("parent_child")
