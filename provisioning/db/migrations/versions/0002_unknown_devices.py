"""Unknown devices: phones that asked for files but are not registered.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 11:04:55.163727
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "unknown_devices",
        sa.Column("mac", sa.String(length=12), nullable=False),
        sa.Column("family", sa.String(length=64), nullable=False),
        sa.Column("ua_model", sa.String(length=64), nullable=True),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_ip", sa.String(length=45), nullable=False),
        sa.Column("last_user_agent", sa.String(length=256), nullable=False),
        sa.Column("last_file", sa.String(length=128), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("mac", name=op.f("pk_unknown_devices")),
    )
    with op.batch_alter_table("unknown_devices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_unknown_devices_last_seen_at"), ["last_seen_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("unknown_devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unknown_devices_last_seen_at"))

    op.drop_table("unknown_devices")
