"""Initial schema: accounts, lines, catalog models, devices, line slots, sightings.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 10:51:03.576487
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("street", sa.String(length=200), nullable=False),
        sa.Column("postcode", sa.String(length=20), nullable=False),
        sa.Column("town", sa.String(length=100), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("vendor", sa.String(length=64), nullable=False),
        sa.Column("family", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=128), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("orderable", sa.Boolean(), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=True),
        sa.CheckConstraint("slots >= 1", name=op.f("ck_models_slots")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.UniqueConstraint("id", "slots", name=op.f("uq_models_id_slots")),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("mac", sa.String(length=12), nullable=False),
        sa.Column("model_id", sa.String(length=64), nullable=False),
        sa.Column("slot_count", sa.Integer(), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token_enc", sa.Text(), nullable=False),
        sa.Column("config_revision", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_ip", sa.String(length=45), nullable=True),
        sa.Column("last_user_agent", sa.String(length=256), nullable=True),
        sa.Column("last_firmware", sa.String(length=64), nullable=True),
        sa.Column("last_revision_served", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('stock', 'assigned', 'active', 'returned')", name=op.f("ck_devices_state")
        ),
        sa.CheckConstraint("length(mac) = 12", name=op.f("ck_devices_mac")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_devices_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["model_id", "slot_count"],
            ["models.id", "models.slots"],
            name=op.f("fk_devices_model_id_slot_count_models"),
            onupdate="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint(
            "id", "account_id", "slot_count", name=op.f("uq_devices_id_account_id_slot_count")
        ),
        sa.UniqueConstraint("mac", name=op.f("uq_devices_mac")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_devices_token_hash")),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devices_account_id"), ["account_id"], unique=False)

    op.create_table(
        "lines",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("sip_username", sa.String(length=128), nullable=False),
        sa.Column("auth_username", sa.String(length=128), nullable=True),
        sa.Column("password_enc", sa.Text(), nullable=False),
        sa.Column("registrar_host", sa.String(length=255), nullable=False),
        sa.Column("registrar_port", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(length=3), nullable=False),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("transport IN ('udp', 'tcp', 'tls')", name=op.f("ck_lines_transport")),
        sa.CheckConstraint("registrar_port BETWEEN 1 AND 65535", name=op.f("ck_lines_port")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_lines_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lines")),
        sa.UniqueConstraint("id", "account_id", name=op.f("uq_lines_id_account_id")),
        sa.UniqueConstraint(
            "registrar_host", "sip_username", name=op.f("uq_lines_registrar_host_sip_username")
        ),
    )
    op.create_table(
        "line_slots",
        sa.Column(
            "device_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("slot_count", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "slot >= 1 AND slot <= slot_count", name=op.f("ck_line_slots_slot_range")
        ),
        sa.ForeignKeyConstraint(
            ["device_id", "account_id", "slot_count"],
            ["devices.id", "devices.account_id", "devices.slot_count"],
            name=op.f("fk_line_slots_device_id_account_id_slot_count_devices"),
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["line_id", "account_id"],
            ["lines.id", "lines.account_id"],
            name=op.f("fk_line_slots_line_id_account_id_lines"),
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", "slot", name=op.f("pk_line_slots")),
        sa.UniqueConstraint("line_id", name=op.f("uq_line_slots_line_id")),
    )
    op.create_table(
        "sightings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "device_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=False),
        sa.Column("user_agent", sa.String(length=256), nullable=False),
        sa.Column("firmware", sa.String(length=64), nullable=True),
        sa.Column("file_name", sa.String(length=128), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_sightings_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sightings")),
    )
    with op.batch_alter_table("sightings", schema=None) as batch_op:
        batch_op.create_index("ix_sightings_device_seen", ["device_id", "seen_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sightings", schema=None) as batch_op:
        batch_op.drop_index("ix_sightings_device_seen")

    op.drop_table("sightings")
    op.drop_table("line_slots")
    op.drop_table("lines")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devices_account_id"))

    op.drop_table("devices")
    op.drop_table("models")
    op.drop_table("accounts")
