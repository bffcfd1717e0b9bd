"""Alembic environment: migrations always run on a connection handed over by
`provisioning.db.migrate`, so there is one way to reach the database."""

from alembic import context

from provisioning.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `provisioning db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
