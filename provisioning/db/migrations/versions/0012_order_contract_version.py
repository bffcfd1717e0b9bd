"""The version of the contract each order's customer accepted (orders.contract).

A plain ADD COLUMN (nullable: orders validated before it keep none), so SQLite does not copy
the table and the row-generation triggers of 0009 stay in place.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("contract_version", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("orders", "contract_version")
