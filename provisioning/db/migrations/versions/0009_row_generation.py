"""Row generation: one number that moves whenever what the phone fetch path reads changes.

On SQLite the fetch path keeps the device rows it read until this number moves
(phones.lookup). Triggers move it on any change of a device's token, MAC, model, account,
revision, creation time or whether it was ever seen, on a device created or deleted, and on an
order created, deleted or changing state or device: whatever statement makes the change (ORM,
CLI, manual SQL). Refreshing last-seen facts, which every phone does every few minutes, does not
move it. A later migration that rebuilds `devices` or `orders` (Alembic's batch mode on SQLite
copies the table) drops these triggers and must create them again (`tests/test_lookup.py`
fails otherwise).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 02:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUMP = "BEGIN UPDATE row_generation SET value = value + 1; END"
# What `phones.lookup.COLUMNS` reads, compared old to new (IS NOT: NULL-safe).
DEVICE_CHANGED = (
    "OLD.id IS NOT NEW.id OR OLD.mac IS NOT NEW.mac OR OLD.model_id IS NOT NEW.model_id"
    " OR OLD.account_id IS NOT NEW.account_id OR OLD.config_revision IS NOT NEW.config_revision"
    " OR OLD.created_at IS NOT NEW.created_at OR OLD.token_hash IS NOT NEW.token_hash"
    " OR (OLD.last_seen_at IS NULL) <> (NEW.last_seen_at IS NULL)"
)
ORDER_CHANGED = "OLD.state IS NOT NEW.state OR OLD.device_id IS NOT NEW.device_id"
TRIGGERS = {
    "row_generation_device_insert": f"AFTER INSERT ON devices {BUMP}",
    "row_generation_device_delete": f"AFTER DELETE ON devices {BUMP}",
    "row_generation_device_update": f"AFTER UPDATE ON devices WHEN {DEVICE_CHANGED} {BUMP}",
    "row_generation_order_insert": f"AFTER INSERT ON orders {BUMP}",
    "row_generation_order_delete": f"AFTER DELETE ON orders {BUMP}",
    "row_generation_order_update": f"AFTER UPDATE ON orders WHEN {ORDER_CHANGED} {BUMP}",
}


def upgrade() -> None:
    op.create_table(
        "row_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_row_generation")),
    )
    op.execute("INSERT INTO row_generation (id, value) VALUES (1, 0)")
    if op.get_bind().dialect.name == "sqlite":
        for name, body in TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table("row_generation")
