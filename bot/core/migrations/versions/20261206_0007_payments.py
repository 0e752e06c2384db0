"""payments and payment_callbacks: the fee of a submitted dossier and the platform's callbacks

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 06:00:00
"""

import sqlalchemy as sa
from alembic import op

from bot.core.lifecycles import PAYMENT, PAYMENT_CALLBACK

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dossier_id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=24), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("due_at", sa.DateTime(), nullable=False),
        sa.Column("pay_url", sa.String(length=500), nullable=True),
        sa.Column("paid_at", sa.DateTime(), nullable=True),
        sa.Column("transaction_id", sa.String(length=64), nullable=True),
        sa.Column("receipt_no", sa.String(length=24), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(PAYMENT.check_sql(), name=op.f("ck_payments_status")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_payments_amount_positive")),
        sa.ForeignKeyConstraint(
            ["dossier_id"],
            ["dossiers.id"],
            name=op.f("fk_payments_dossier_id_dossiers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("dossier_id", name=op.f("uq_payments_dossier_id")),
        sa.UniqueConstraint("reference", name=op.f("uq_payments_reference")),
        sa.UniqueConstraint("transaction_id", name=op.f("uq_payments_transaction_id")),
        sa.UniqueConstraint("receipt_no", name=op.f("uq_payments_receipt_no")),
    )
    op.create_index(op.f("ix_payments_status"), "payments", ["status"])
    op.create_index(op.f("ix_payments_paid_at"), "payments", ["paid_at"])
    op.create_table(
        "payment_callbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=False),
        sa.Column("reference", sa.String(length=40), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_by", sa.String(length=64), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint(PAYMENT_CALLBACK.check_sql(), name=op.f("ck_payment_callbacks_outcome")),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_payment_callbacks_payment_id_payments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_callbacks")),
        sa.UniqueConstraint("transaction_id", name=op.f("uq_payment_callbacks_transaction_id")),
    )
    op.create_index(op.f("ix_payment_callbacks_reference"), "payment_callbacks", ["reference"])
    op.create_index(op.f("ix_payment_callbacks_outcome"), "payment_callbacks", ["outcome"])


def downgrade() -> None:
    op.drop_table("payment_callbacks")
    op.drop_table("payments")
