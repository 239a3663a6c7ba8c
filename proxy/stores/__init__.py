"""Stores: SQLite (and later Redis) persistence behind small interfaces."""
