"""Row generation on PostgreSQL: the triggers migration 0009 made for SQLite.

The same changes move `row_generation` (a device's token, MAC, model, account, revision,
creation time or whether it was ever seen; a device created or deleted; an order created,
deleted or changing state or device), in the same transaction, whatever statement makes them,
TRUNCATE included.

Two choices are PostgreSQL's own:

- The triggers are constraint triggers deferred to the commit. The counter's row is locked
  from its update to the end of the transaction; taken at the commit, it is the last lock a
  transaction waits for, so two transactions that change devices in different orders (two
  workers' sighting batches, say) cannot deadlock on it.
- The number moves once per transaction, not once per row: a transaction-local setting says it
  was moved already. Seeding a million devices makes one update of the counter, not a million.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 08:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = """
CREATE FUNCTION row_generation_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('provisioning.row_generation_moved', true) = 'yes' THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('provisioning.row_generation_moved', 'yes', true);
    UPDATE row_generation SET value = value + 1 WHERE id = 1;
    RETURN NULL;
END
$$
"""
# What `phones.lookup.COLUMNS` reads, compared old to new (as in 0009).
DEVICE_CHANGED = (
    "OLD.id IS DISTINCT FROM NEW.id OR OLD.mac IS DISTINCT FROM NEW.mac"
    " OR OLD.model_id IS DISTINCT FROM NEW.model_id"
    " OR OLD.account_id IS DISTINCT FROM NEW.account_id"
    " OR OLD.config_revision IS DISTINCT FROM NEW.config_revision"
    " OR OLD.created_at IS DISTINCT FROM NEW.created_at"
    " OR OLD.token_hash IS DISTINCT FROM NEW.token_hash"
    " OR (OLD.last_seen_at IS NULL) <> (NEW.last_seen_at IS NULL)"
)
ORDER_CHANGED = (
    "OLD.state IS DISTINCT FROM NEW.state OR OLD.device_id IS DISTINCT FROM NEW.device_id"
)
DEFERRED = "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
RUN = "EXECUTE FUNCTION row_generation_bump()"
TRIGGERS = {
    "row_generation_device_insert": f"AFTER INSERT ON devices {DEFERRED} {RUN}",
    "row_generation_device_delete": f"AFTER DELETE ON devices {DEFERRED} {RUN}",
    "row_generation_device_update": (
        f"AFTER UPDATE ON devices {DEFERRED} WHEN ({DEVICE_CHANGED}) {RUN}"
    ),
    "row_generation_order_insert": f"AFTER INSERT ON orders {DEFERRED} {RUN}",
    "row_generation_order_delete": f"AFTER DELETE ON orders {DEFERRED} {RUN}",
    "row_generation_order_update": (
        f"AFTER UPDATE ON orders {DEFERRED} WHEN ({ORDER_CHANGED}) {RUN}"
    ),
}
# TRUNCATE fires no row trigger, and a constraint trigger cannot be a statement's: these take
# the counter's lock at the statement (a rare hand-made emptying, not the application's).
TRUNCATE_TRIGGERS = {
    "row_generation_device_truncate": f"AFTER TRUNCATE ON devices FOR EACH STATEMENT {RUN}",
    "row_generation_order_truncate": f"AFTER TRUNCATE ON orders FOR EACH STATEMENT {RUN}",
}
TABLES = {
    name: body.split(" ON ")[1].split()[0]
    for name, body in [*TRIGGERS.items(), *TRUNCATE_TRIGGERS.items()]
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(FUNCTION)
    for name, body in TRIGGERS.items():
        op.execute(f"CREATE CONSTRAINT TRIGGER {name} {body}")
    for name, body in TRUNCATE_TRIGGERS.items():
        op.execute(f"CREATE TRIGGER {name} {body}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, table in TABLES.items():
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS row_generation_bump()")
