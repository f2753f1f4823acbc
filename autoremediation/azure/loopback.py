"""The token credential for an ARM endpoint on this machine (an emulator on loopback), never for Azure.

An emulator accepts any bearer token, but the SDK clients keep their bearer-token policy, so they need a
credential that hands one out. It lives with the adapters, not with an emulator, so that production code
never imports the development-only emulator package.
"""

from __future__ import annotations

import time
from typing import Any

LOOPBACK_TOKEN = "loopback-arm-token"  # noqa: S105 - a placeholder no real service accepts


class LoopbackCredential:
    """Implements ``azure.core.credentials.TokenCredential`` with a placeholder token that lasts an hour."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(LOOPBACK_TOKEN, int(time.time()) + 3600)

    def close(self) -> None:
        return None

    def __enter__(self) -> LoopbackCredential:
        return self

    def __exit__(self, *args: object) -> None:
        return None
