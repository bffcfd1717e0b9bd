"""Setting overrides per model, account and device.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 11:17:37.743093
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "setting_overrides",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "scope IN ('model', 'account', 'device')", name=op.f("ck_setting_overrides_scope")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_setting_overrides")),
        sa.UniqueConstraint(
            "scope", "target", "key", name=op.f("uq_setting_overrides_scope_target_key")
        ),
    )


def downgrade() -> None:
    op.drop_table("setting_overrides")
