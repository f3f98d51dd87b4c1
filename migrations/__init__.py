"""Alembic migrations, shipped inside the package as governor._migrations."""
