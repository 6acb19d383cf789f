"""Database: engines, sessions, the declarative base and the Alembic migrations."""
