"""End-to-end tests use Azurite (started once per test session) like the store tests do."""

from tests.azurite import azurite, azurite_connection_string  # noqa: F401
