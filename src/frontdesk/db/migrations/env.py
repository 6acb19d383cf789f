from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from frontdesk.db.engine import _sqlite_pragmas
from frontdesk.db.models import Base
from frontdesk.db.search import schema_objects_on

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    is_sqlite = engine.dialect.name == "sqlite"
    if is_sqlite:
        from sqlalchemy import event

        event.listen(engine, "connect", _sqlite_pragmas)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=is_sqlite,  # SQLite alters tables by copying them
            compare_type=True,
            include_object=schema_objects_on(engine.dialect.name),
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("Offline (SQL script) migrations are not supported; run `frontdesk migrate`")
run_migrations_online()
