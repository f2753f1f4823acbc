"""A credential for the local ARM emulator: the SDK keeps its bearer-token policy, the token is a dummy."""

from __future__ import annotations

import time
from typing import Any


class FleetCredential:
    """Implements ``azure.core.credentials.TokenCredential`` for the emulator, which accepts any token."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("local-fleet-token", int(time.time()) + 3600)

    def close(self) -> None:
        return None

    def __enter__(self) -> FleetCredential:
        return self

    def __exit__(self, *args: object) -> None:
        return None
