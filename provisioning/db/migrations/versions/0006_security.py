"""Phones prove who they are: credentials, policies, bindings, digest nonces, scanner bans

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-26 11:59:27.886351
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "digest_nonce_uses",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("nc", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nonce", "nc", name=op.f("pk_digest_nonce_uses")),
    )
    with op.batch_alter_table("digest_nonce_uses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_digest_nonce_uses_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "source_bans",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_source_bans")),
    )
    with op.batch_alter_table("source_bans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_source_bans_until"), ["until"], unique=False)

    op.create_table(
        "source_misses",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("previous", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_source_misses")),
    )
    op.create_table(
        "account_policies",
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("proofs", sa.String(length=40), nullable=False),
        sa.Column("binding", sa.String(length=8), nullable=False),
        sa.Column("first_contact_days", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "binding IN ('off', 'address', 'network')", name=op.f("ck_account_policies_binding")
        ),
        sa.CheckConstraint(
            "first_contact_days IS NULL OR first_contact_days >= 1",
            name=op.f("ck_account_policies_days"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_policies_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_policies")),
    )
    op.create_table(
        "device_bindings",
        sa.Column(
            "device_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("bound_to", sa.String(length=49), nullable=True),
        sa.Column("bound_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refused_from", sa.String(length=45), nullable=True),
        sa.Column("refused_reason", sa.String(length=16), nullable=True),
        sa.Column("refusals", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_bindings_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_device_bindings")),
    )
    op.create_table(
        "device_credentials",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "device_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("secret_hash", sa.String(length=64), nullable=True),
        sa.Column("secret_enc", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('token', 'digest')", name=op.f("ck_device_credentials_kind")),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_credentials_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_credentials")),
    )
    with op.batch_alter_table("device_credentials", schema=None) as batch_op:
        batch_op.create_index("ix_device_credentials_device", ["device_id", "kind"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_device_credentials_secret_hash"), ["secret_hash"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("device_credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_credentials_secret_hash"))
        batch_op.drop_index("ix_device_credentials_device")

    op.drop_table("device_credentials")
    op.drop_table("device_bindings")
    op.drop_table("account_policies")
    op.drop_table("source_misses")
    with op.batch_alter_table("source_bans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_source_bans_until"))

    op.drop_table("source_bans")
    with op.batch_alter_table("digest_nonce_uses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_digest_nonce_uses_expires_at"))

    op.drop_table("digest_nonce_uses")
