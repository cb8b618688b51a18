"""Alembic migrations of the health record database (run by ``cloud.db.migrate``)."""
