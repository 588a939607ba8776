"""Batches of studies: ``run`` (``localize batch``), its SQLite ``catalog`` and the child ``worker``."""
