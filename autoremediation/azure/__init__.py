"""Adapters on the real Azure SDKs. Each module imports its SDK lazily, inside the functions that use it."""
