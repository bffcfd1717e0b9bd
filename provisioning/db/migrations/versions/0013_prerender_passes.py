"""Where each worker's renderer ahead last finished a whole pass: the fingerprint and the
row_generation it started at, so that a restart with nothing changed does not read every device
again (render.stored, phones.prerender).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 17:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prerender_passes",
        sa.Column("share", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("share", name=op.f("pk_prerender_passes")),
    )


def downgrade() -> None:
    op.drop_table("prerender_passes")
