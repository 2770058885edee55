"""Persistence: tables, engines, migrations and the queue."""
