"""Orders, line handovers, device returns, and the device state `to_return`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 11:40:57.356145
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _device_states(OLD_STATES, NEW_STATES)
    op.create_table(
        "orders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("line_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "replaced_device_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("replaced_mac", sa.String(length=12), nullable=True),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("model_label", sa.String(length=128), nullable=False),
        sa.Column("carrier", sa.String(length=32), nullable=False),
        sa.Column("carrier_label", sa.String(length=64), nullable=False),
        sa.Column("relay_point_id", sa.String(length=32), nullable=True),
        sa.Column("delivery_name", sa.String(length=200), nullable=False),
        sa.Column("delivery_street", sa.String(length=200), nullable=False),
        sa.Column("delivery_postcode", sa.String(length=20), nullable=False),
        sa.Column("delivery_town", sa.String(length=100), nullable=False),
        sa.Column("delivery_country", sa.String(length=2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("vat_rate_bp", sa.Integer(), nullable=False),
        sa.Column("model_price_cents", sa.Integer(), nullable=False),
        sa.Column("shipping_cents", sa.Integer(), nullable=False),
        sa.Column("total_excl_cents", sa.Integer(), nullable=False),
        sa.Column("vat_cents", sa.Integer(), nullable=False),
        sa.Column("total_incl_cents", sa.Integer(), nullable=False),
        sa.Column("contract_accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("request_hash", sa.String(length=64), nullable=True),
        sa.Column("validated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ship_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("device_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("mac", sa.String(length=12), nullable=True),
        sa.Column("tracking", sa.String(length=64), nullable=True),
        sa.CheckConstraint("kind IN ('new', 'replacement')", name=op.f("ck_orders_kind")),
        sa.CheckConstraint(
            "state IN ('validated', 'shipped', 'delivered', 'cancelled')",
            name=op.f("ck_orders_state"),
        ),
        sa.CheckConstraint(
            "total_excl_cents = model_price_cents + shipping_cents "
            "AND total_incl_cents = total_excl_cents + vat_cents "
            "AND model_price_cents >= 0 AND shipping_cents >= 0 AND vat_cents >= 0",
            name=op.f("ck_orders_totals"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_orders_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_orders_device_id_devices"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["line_id"], ["lines.id"], name=op.f("fk_orders_line_id_lines"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_orders_model_id_models")
        ),
        sa.ForeignKeyConstraint(
            ["replaced_device_id"],
            ["devices.id"],
            name=op.f("fk_orders_replaced_device_id_devices"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_orders")),
        sa.UniqueConstraint(
            "account_id", "idempotency_key", name=op.f("uq_orders_account_id_idempotency_key")
        ),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_device_id"), ["device_id"], unique=False)
        batch_op.create_index(
            "ix_orders_open_line",
            ["line_id"],
            unique=True,
            sqlite_where=sa.text("state = 'validated'"),
            postgresql_where=sa.text("state = 'validated'"),
        )
        batch_op.create_index("ix_orders_state_ship_by", ["state", "ship_by"], unique=False)

    op.create_table(
        "device_returns",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reference", sa.String(length=16), nullable=False),
        sa.Column(
            "device_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("mac", sa.String(length=12), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "reason IN ('return', 'replacement')", name=op.f("ck_device_returns_reason")
        ),
        sa.CheckConstraint(
            "state IN ('awaiting', 'received')", name=op.f("ck_device_returns_state")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_device_returns_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_returns_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_device_returns_order_id_orders"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_returns")),
        sa.UniqueConstraint("reference", name=op.f("uq_device_returns_reference")),
    )
    with op.batch_alter_table("device_returns", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_device_returns_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            "ix_device_returns_open_device",
            ["device_id"],
            unique=True,
            sqlite_where=sa.text("state = 'awaiting'"),
            postgresql_where=sa.text("state = 'awaiting'"),
        )

    op.create_table(
        "line_handovers",
        sa.Column("order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("line_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "new_device_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "old_device_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["line_id"],
            ["lines.id"],
            name=op.f("fk_line_handovers_line_id_lines"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["new_device_id"],
            ["devices.id"],
            name=op.f("fk_line_handovers_new_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["old_device_id"],
            ["devices.id"],
            name=op.f("fk_line_handovers_old_device_id_devices"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_line_handovers_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_id", "line_id", name=op.f("pk_line_handovers")),
    )
    with op.batch_alter_table("line_handovers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_line_handovers_new_device_id"), ["new_device_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("line_handovers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_line_handovers_new_device_id"))

    op.drop_table("line_handovers")
    with op.batch_alter_table("device_returns", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_device_returns_open_device",
            sqlite_where=sa.text("state = 'awaiting'"),
            postgresql_where=sa.text("state = 'awaiting'"),
        )
        batch_op.drop_index(batch_op.f("ix_device_returns_account_id"))

    op.drop_table("device_returns")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_state_ship_by")
        batch_op.drop_index(
            "ix_orders_open_line",
            sqlite_where=sa.text("state = 'validated'"),
            postgresql_where=sa.text("state = 'validated'"),
        )
        batch_op.drop_index(batch_op.f("ix_orders_device_id"))
        batch_op.drop_index(batch_op.f("ix_orders_account_id"))

    op.drop_table("orders")
    # Phones on their way back were, before this revision, simply returned.
    op.execute("UPDATE devices SET state = 'returned' WHERE state = 'to_return'")
    _device_states(NEW_STATES, OLD_STATES)


OLD_STATES = "state IN ('stock', 'assigned', 'active', 'returned')"
NEW_STATES = "state IN ('stock', 'assigned', 'active', 'returned', 'to_return')"


def _device_states(old: str, new: str) -> None:
    """Replace the CHECK constraint on devices.state.

    PostgreSQL alters it in place. SQLite cannot alter a constraint, and the batch mode's way
    (copy the table, drop the old one, rename) is not safe here: migrations run in a
    transaction with foreign keys on, where the DROP TABLE of `devices` deletes its rows first
    and so CASCADEs into line_slots and sightings (every phone would lose its lines). Changing
    only a CHECK constraint does not touch the stored rows, so SQLite's documented procedure
    for such changes applies instead: edit the table's definition in sqlite_schema and bump
    the schema version (https://www.sqlite.org/lang_altertable.html, "otheralter")."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_devices_state"), "devices", type_="check")
        op.create_check_constraint(op.f("ck_devices_state"), "devices", new)
        return
    table_sql = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'devices'"
    ).scalar_one()
    before = f"CONSTRAINT ck_devices_state CHECK ({old})"
    if table_sql.count(before) != 1:
        raise RuntimeError("devices: unexpected definition of ck_devices_state")
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = 'devices'",
        (table_sql.replace(before, f"CONSTRAINT ck_devices_state CHECK ({new})"),),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema = OFF")
