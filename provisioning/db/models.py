"""The data model. Invariants that matter (a line in at most one slot of one device, a slot within
the model's slot count, a device and its lines in the same account) are enforced by the database
through constraints, so no code path, race or manual SQL can break them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# `to_return`: given back (or replaced) by its customer, on its way to the warehouse.
DEVICE_STATES = ("stock", "assigned", "active", "returned", "to_return")
TRANSPORTS = ("udp", "tcp", "tls")

BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every engine (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Default delivery address: where a Plug & Phone is shipped unless the order says otherwise.
    street: Mapped[str] = mapped_column(String(200), default="")
    postcode: Mapped[str] = mapped_column(String(20), default="")
    town: Mapped[str] = mapped_column(String(100), default="")
    country: Mapped[str] = mapped_column(String(2), default="FR")
    timezone: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    lines: Mapped[list[Line]] = relationship(back_populates="account", order_by="Line.id")


class Line(Base):
    __tablename__ = "lines"
    __table_args__ = (
        UniqueConstraint("id", "account_id"),
        UniqueConstraint("registrar_host", "sip_username"),
        CheckConstraint("registrar_port BETWEEN 1 AND 65535", name="port"),
        CheckConstraint("transport IN ('udp', 'tcp', 'tls')", name="transport"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(32))
    sip_username: Mapped[str] = mapped_column(String(128))
    auth_username: Mapped[str | None] = mapped_column(String(128))
    # Fernet token: a database dump alone does not give away SIP passwords.
    password_enc: Mapped[str] = mapped_column(Text)
    registrar_host: Mapped[str] = mapped_column(String(255))
    registrar_port: Mapped[int] = mapped_column(Integer, default=5060)
    transport: Mapped[str] = mapped_column(String(3), default="udp")
    display_name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    account: Mapped[Account] = relationship(back_populates="lines")
    slot: Mapped[LineSlot | None] = relationship(back_populates="line", viewonly=True)


class Model(Base):
    """A catalog entry, synchronised from the families' `family.toml` files."""

    __tablename__ = "models"
    __table_args__ = (
        UniqueConstraint("id", "slots"),
        CheckConstraint("slots >= 1", name="slots"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    vendor: Mapped[str] = mapped_column(String(64))
    family: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(128))
    slots: Mapped[int] = mapped_column(Integer)
    orderable: Mapped[bool] = mapped_column(Boolean, default=False)
    price_cents: Mapped[int | None] = mapped_column(Integer)


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        # The slot count is copied from the model and kept in step by ON UPDATE CASCADE, so the
        # line_slots table can check "slot <= slot count" without a trigger.
        ForeignKeyConstraint(
            ["model_id", "slot_count"],
            ["models.id", "models.slots"],
            onupdate="CASCADE",
        ),
        UniqueConstraint("id", "account_id", "slot_count"),
        CheckConstraint(
            "state IN ('stock', 'assigned', 'active', 'returned', 'to_return')",
            name="state",
        ),
        CheckConstraint("length(mac) = 12", name="mac"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    mac: Mapped[str] = mapped_column(String(12), unique=True)
    model_id: Mapped[str] = mapped_column(String(64))
    slot_count: Mapped[int] = mapped_column(Integer)
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="RESTRICT"), index=True
    )
    state: Mapped[str] = mapped_column(String(16), default="stock")
    # The URL token is looked up by its SHA-256 (a stolen dump gives no working URL)...
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # ...and kept encrypted so the provisioning URL can be shown again and written into configs.
    token_enc: Mapped[str] = mapped_column(Text)
    config_revision: Mapped[int] = mapped_column(Integer, default=1)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_ip: Mapped[str | None] = mapped_column(String(45))
    last_user_agent: Mapped[str | None] = mapped_column(String(256))
    last_firmware: Mapped[str | None] = mapped_column(String(64))
    last_revision_served: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    model: Mapped[Model] = relationship(
        foreign_keys=[model_id], primaryjoin="Device.model_id == Model.id", viewonly=True
    )
    account: Mapped[Account | None] = relationship(viewonly=True)
    slots: Mapped[list[LineSlot]] = relationship(
        back_populates="device", order_by="LineSlot.slot", viewonly=True
    )


class LineSlot(Base):
    __tablename__ = "line_slots"
    __table_args__ = (
        ForeignKeyConstraint(
            ["device_id", "account_id", "slot_count"],
            ["devices.id", "devices.account_id", "devices.slot_count"],
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        ForeignKeyConstraint(
            ["line_id", "account_id"],
            ["lines.id", "lines.account_id"],
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        CheckConstraint("slot >= 1 AND slot <= slot_count", name="slot_range"),
    )

    device_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    line_id: Mapped[int] = mapped_column(BigId, unique=True)
    account_id: Mapped[int] = mapped_column(BigId)
    slot_count: Mapped[int] = mapped_column(Integer)

    device: Mapped[Device] = relationship(back_populates="slots", viewonly=True)
    line: Mapped[Line] = relationship(back_populates="slot", viewonly=True)


class SettingOverride(Base):
    """An operator's setting for one model, account or device, merged over the family's output
    in that order (device wins). Keys are in the family's own terms: `key` for `key = value`
    formats, an XML path (`path/to/element` or `path@attribute`) for XML formats."""

    __tablename__ = "setting_overrides"
    __table_args__ = (
        UniqueConstraint("scope", "target", "key"),
        CheckConstraint("scope IN ('model', 'account', 'device')", name="scope"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))
    # Model id, account id or device MAC, as text: one table for the three scopes.
    target: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(200))
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ApiToken(Base):
    """A bearer token of the JSON API. Only its SHA-256 is stored: shown once at creation."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint("role IN ('operator', 'customer')", name="role"),
        # A customer token is bound to exactly one account; an operator token to none.
        CheckConstraint(
            "(role = 'customer' AND account_id IS NOT NULL) "
            "OR (role = 'operator' AND account_id IS NULL)",
            name="role_account",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEvent(Base):
    """Who changed what, when, from where, with the state before and after (never a secret)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_account", "account_id", "id"),
        Index("ix_audit_events_device", "device_mac", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    ip: Mapped[str | None] = mapped_column(String(45))
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int | None] = mapped_column(BigId)
    device_mac: Mapped[str | None] = mapped_column(String(12))
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)


class Push(Base):
    """ "Device D must fetch revision R (or a later one) before T": one per change. Applied is
    proven by a fetch that delivered R or later, never by a NOTIFY's 200."""

    __tablename__ = "pushes"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'notified', 'applied', 'overdue')", name="state"),
        Index("ix_pushes_due", "state", "next_attempt_at"),
        Index("ix_pushes_device", "device_id", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    target_revision: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(12), default="pending")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_result: Mapped[str | None] = mapped_column(String(64))


class Association(Base):
    """A customer's "put this line on my phone": its status is its push's."""

    __tablename__ = "associations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    line_id: Mapped[int] = mapped_column(ForeignKey("lines.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    slot: Mapped[int] = mapped_column(Integer)
    push_id: Mapped[int] = mapped_column(ForeignKey("pushes.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    push: Mapped[Push] = relationship(viewonly=True)


class UnknownDevice(Base):
    """A phone that asked for its files but is not registered: what an operator needs to claim
    it. Only requests that look like a real phone are kept (see `phones.unknown`)."""

    __tablename__ = "unknown_devices"

    mac: Mapped[str] = mapped_column(String(12), primary_key=True)
    family: Mapped[str] = mapped_column(String(64))
    ua_model: Mapped[str | None] = mapped_column(String(64))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    last_ip: Mapped[str] = mapped_column(String(45))
    last_user_agent: Mapped[str] = mapped_column(String(256))
    last_file: Mapped[str] = mapped_column(String(128))
    requests: Mapped[int] = mapped_column(Integer, default=1)


class Sighting(Base):
    __tablename__ = "sightings"
    __table_args__ = (Index("ix_sightings_device_seen", "device_id", "seen_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ip: Mapped[str] = mapped_column(String(45))
    user_agent: Mapped[str] = mapped_column(String(256), default="")
    firmware: Mapped[str | None] = mapped_column(String(64))
    file_name: Mapped[str] = mapped_column(String(128))
    revision: Mapped[int] = mapped_column(Integer)


class RenderedFile(Base):
    """A device's file as rendered for one config revision, kept durably so that a phone's
    first fetch after a restart is one indexed read (render.stored). `body` is sealed
    (compressed, then AES-GCM with a key derived from the secret key): it holds SIP
    passwords. `fingerprint` names what else the bytes were made from (templates, the settings
    rendering reads, the key): a server whose fingerprint differs ignores the row."""

    __tablename__ = "rendered_files"

    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    file_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(32))
    etag: Mapped[str] = mapped_column(String(40))
    body: Mapped[bytes] = mapped_column(LargeBinary)


class PrerenderPass(Base):
    """The last whole pass of a worker's renderer ahead (phones.prerender) with every device of
    its share (`index/count`) rendered: the fingerprint and the row_generation it started at.
    While both are still what they are, a restarted worker has nothing to render and need not
    read every device to find out (a million devices: a second or two of CPU per worker, right
    in a boot storm)."""

    __tablename__ = "prerender_passes"

    share: Mapped[str] = mapped_column(String(16), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(32))
    generation: Mapped[int] = mapped_column(BigInteger)


ORDER_KINDS = ("new", "replacement")
ORDER_STATES = ("validated", "shipped", "delivered", "cancelled")
RETURN_STATES = ("awaiting", "received")


class Order(Base):
    """A phone ordered for a line: a new one, or a replacement of the phone carrying it. Only
    validated orders are stored (a quote is a computation). Prices are integer cents excluding
    VAT with the VAT worked out once, at validation; the database checks that they add up."""

    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("kind IN ('new', 'replacement')", name="kind"),
        CheckConstraint(
            "state IN ('validated', 'shipped', 'delivered', 'cancelled')", name="state"
        ),
        CheckConstraint(
            "total_excl_cents = model_price_cents + shipping_cents "
            "AND total_incl_cents = total_excl_cents + vat_cents "
            "AND model_price_cents >= 0 AND shipping_cents >= 0 AND vat_cents >= 0",
            name="totals",
        ),
        # A double click (or a retry) with the same Idempotency-Key finds the first order.
        UniqueConstraint("account_id", "idempotency_key"),
        # One order being prepared per line, whatever the keys: the second click loses.
        Index(
            "ix_orders_open_line",
            "line_id",
            unique=True,
            sqlite_where=text("state = 'validated'"),
            postgresql_where=text("state = 'validated'"),
        ),
        Index("ix_orders_state_ship_by", "state", "ship_by"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="RESTRICT"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="validated")
    # An order is a record of a sale: it outlives the line and phones it was about.
    line_id: Mapped[int | None] = mapped_column(ForeignKey("lines.id", ondelete="SET NULL"))
    replaced_device_id: Mapped[int | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL")
    )
    replaced_mac: Mapped[str | None] = mapped_column(String(12))
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"))
    # Labels as the customer saw them when validating (the catalog may be renamed later).
    model_label: Mapped[str] = mapped_column(String(128))
    carrier: Mapped[str] = mapped_column(String(32))
    carrier_label: Mapped[str] = mapped_column(String(64))
    relay_point_id: Mapped[str | None] = mapped_column(String(32))
    delivery_name: Mapped[str] = mapped_column(String(200))
    delivery_street: Mapped[str] = mapped_column(String(200))
    delivery_postcode: Mapped[str] = mapped_column(String(20))
    delivery_town: Mapped[str] = mapped_column(String(100))
    delivery_country: Mapped[str] = mapped_column(String(2))
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    # VAT rate in basis points (2000 = 20 %): exact, whatever the engine.
    vat_rate_bp: Mapped[int] = mapped_column(Integer)
    model_price_cents: Mapped[int] = mapped_column(Integer)
    shipping_cents: Mapped[int] = mapped_column(Integer)
    total_excl_cents: Mapped[int] = mapped_column(Integer)
    vat_cents: Mapped[int] = mapped_column(Integer)
    total_incl_cents: Mapped[int] = mapped_column(Integer)
    contract_accepted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Which contract was accepted (orders.contract): none on orders older than migration 0012.
    contract_version: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # SHA-256 of the request the key was first used with: the same key for another order is
    # refused rather than answered with the wrong order.
    request_hash: Mapped[str | None] = mapped_column(String(64))
    validated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ship_by: Mapped[datetime] = mapped_column(UTCDateTime())
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    device_id: Mapped[int | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL"), index=True
    )
    mac: Mapped[str | None] = mapped_column(String(12))
    tracking: Mapped[str | None] = mapped_column(String(64))


class LineHandover(Base):
    """A line that moves from a replaced phone to its replacement at the replacement's first
    fetch (until then the old phone keeps it: a line sits in one slot only)."""

    __tablename__ = "line_handovers"

    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    line_id: Mapped[int] = mapped_column(
        ForeignKey("lines.id", ondelete="CASCADE"), primary_key=True
    )
    new_device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), index=True
    )
    old_device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="SET NULL"))
    slot: Mapped[int] = mapped_column(Integer)


class DeviceReturn(Base):
    """A phone on its way back to the warehouse, known by a reference the customer writes on
    the parcel. Its credential is revoked when the warehouse receives it."""

    __tablename__ = "device_returns"
    __table_args__ = (
        CheckConstraint("state IN ('awaiting', 'received')", name="state"),
        CheckConstraint("reason IN ('return', 'replacement')", name="reason"),
        # One return under way per phone.
        Index(
            "ix_device_returns_open_device",
            "device_id",
            unique=True,
            sqlite_where=text("state = 'awaiting'"),
            postgresql_where=text("state = 'awaiting'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    mac: Mapped[str] = mapped_column(String(12))
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="RESTRICT"), index=True
    )
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="awaiting")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# -- Phones proving who they are (issue 9): credentials, policies, bindings, scanner defence ----


class DeviceCredential(Base):
    """A device's provisioning credential besides its current URL token: digest passwords
    (current: `expires_at` NULL) and, during a rotation's overlap, the previous token or password
    (valid until `expires_at`). Secrets are Fernet-encrypted (digest needs the plaintext for HA1);
    old tokens are also looked up by SHA-256, like the current one."""

    __tablename__ = "device_credentials"
    __table_args__ = (
        CheckConstraint("kind IN ('token', 'digest')", name="kind"),
        Index("ix_device_credentials_device", "device_id", "kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    username: Mapped[str | None] = mapped_column(String(64))
    secret_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    secret_enc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AccountPolicy(Base):
    """Which proofs an account's phones must give, and whether they are bound to the place they
    first fetched from. Accounts without a row follow the global default (settings)."""

    __tablename__ = "account_policies"
    __table_args__ = (
        CheckConstraint("binding IN ('off', 'address', 'network')", name="binding"),
        CheckConstraint("first_contact_days IS NULL OR first_contact_days >= 1", name="days"),
    )

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    proofs: Mapped[str] = mapped_column(String(40))
    binding: Mapped[str] = mapped_column(String(8), default="off")
    first_contact_days: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeviceBinding(Base):
    """First-contact binding of one device: where it first fetched from (address or network),
    when its first-contact window started, and the last refusal (reported to operators)."""

    __tablename__ = "device_bindings"

    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    bound_to: Mapped[str | None] = mapped_column(String(49))
    bound_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Start of the first-contact window; NULL: the device's creation. An unlock restarts it.
    window_from: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refused_from: Mapped[str | None] = mapped_column(String(45))
    refused_reason: Mapped[str | None] = mapped_column(String(16))
    refusals: Mapped[int] = mapped_column(Integer, default=0)


class DigestNonceUse(Base):
    """Each (nonce, nonce-count) a digest answer used, kept until the nonce expires: the primary
    key makes a replayed Authorization header fail on every server instance alike."""

    __tablename__ = "digest_nonce_uses"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    nc: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class SourceMisses(Base):
    """Misses of one source (an address, or a network `a.b.c.0/24`) in a sliding window kept as
    two fixed windows (current and previous, weighted): one row per source, O(1) per miss."""

    __tablename__ = "source_misses"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Index of the current window: seconds since the epoch // window length.
    bucket: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(Integer)
    previous: Mapped[int] = mapped_column(Integer)


class SourceBan(Base):
    """A source (address or network) that missed too often: answered 403 until `until`."""

    __tablename__ = "source_bans"

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    misses: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebUser(Base):
    """Someone who signs in to the web Manager: a customer (one account) or an operator. The
    password is stored as a memory-hard hash (scrypt, see `web.passwords`); failed sign-ins lock
    the login for a while."""

    __tablename__ = "web_users"
    __table_args__ = (
        CheckConstraint("role IN ('operator', 'customer')", name="role"),
        CheckConstraint(
            "(role = 'customer' AND account_id IS NOT NULL) "
            "OR (role = 'operator' AND account_id IS NULL)",
            name="role_account",
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored, so a
    database dump gives no working session."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("web_users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RowGeneration(Base):
    """One row, one number: triggers (migrations 0009, 0010) add one to it whenever a device
    row changes in a way the phone fetch path reads (token, MAC, model, account, revision,
    first sighting, creation, deletion) or an order's state or device changes. The fetch path
    keeps the rows it read (SQLite) and the answers it gave (phones.answers) while the number
    stays (phones.lookup); refreshing last-seen facts does not move it."""

    __tablename__ = "row_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


__all__ = [
    "DEVICE_STATES",
    "ORDER_KINDS",
    "ORDER_STATES",
    "RETURN_STATES",
    "TRANSPORTS",
    "Account",
    "AccountPolicy",
    "ApiToken",
    "Association",
    "AuditEvent",
    "Base",
    "Device",
    "DeviceBinding",
    "DeviceCredential",
    "DeviceReturn",
    "DigestNonceUse",
    "Line",
    "LineHandover",
    "LineSlot",
    "Model",
    "Order",
    "Push",
    "RowGeneration",
    "SettingOverride",
    "Sighting",
    "SourceBan",
    "SourceMisses",
    "UnknownDevice",
    "WebSession",
    "WebUser",
    "utcnow",
]
