"""Persistence: SQLAlchemy Core metadata store and the content-addressed code blob store."""
