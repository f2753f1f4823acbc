"""SDK clients built from Settings: one per subscription, cached, pointed at ARM or the local emulator.

In Azure the credential is the managed identity (``AZURE_CLIENT_ID`` picks a user-assigned one) or
``DefaultAzureCredential``; against a loopback ``REMEDIATION_ARM_ENDPOINT`` it is a placeholder-token
credential (``loopback.py``: production code never imports the emulator). The SDK's own retries are off:
the adapters retry with typed errors and a bounded budget.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..errors import InvalidInput
from ..settings import Settings, http_environment
from . import modelrace

ARM_SCOPE = "https://management.azure.com/.default"

_lock = threading.Lock()
_clients: dict[tuple[str, ...], Any] = {}
_credentials: dict[tuple[str, ...], Any] = {}


def credential(settings: Settings) -> Any:
    """The token credential for ``settings``, created once per identity."""
    key = (settings.arm_endpoint, settings.managed_identity_client_id or "")
    with _lock:
        cached = _credentials.get(key)
        if cached is not None:
            return cached
        if settings.arm_is_local:
            from .loopback import LoopbackCredential

            made: Any = LoopbackCredential()
        elif settings.managed_identity_client_id:
            from azure.identity import ManagedIdentityCredential

            made = ManagedIdentityCredential(client_id=settings.managed_identity_client_id)
        else:
            from azure.identity import DefaultAzureCredential

            made = DefaultAzureCredential()
        _credentials[key] = made
        return made


def _options(settings: Settings) -> dict[str, Any]:
    parts = urlsplit(settings.arm_endpoint)
    if parts.scheme != "https" or not parts.hostname:
        raise InvalidInput(
            f"setting REMEDIATION_ARM_ENDPOINT={settings.arm_endpoint!r} must be an https:// URL"
        )
    options: dict[str, Any] = {
        # The proxy and CA bundle of the environment, resolved once for ARM's endpoint instead of on every
        # request (see settings.http_environment); REMEDIATION_ARM_CA_BUNDLE still wins.
        **http_environment(settings.arm_endpoint),
        "base_url": settings.arm_endpoint,
        "credential_scopes": [ARM_SCOPE],
        "retry_total": 0,
    }
    if settings.arm_ca_bundle:
        options["connection_verify"] = settings.arm_ca_bundle
    limits = settings.arm_budget
    if limits is not None:
        # Spend ARM's per-subscription token buckets before ARM answers 429.
        from .budget import arm_budget_policy

        options["per_call_policies"] = [arm_budget_policy(arm_budget(limits))]
    return options


_budgets: dict[tuple[tuple[str, float, float], ...], Any] = {}


def arm_budget(limits: dict[str, tuple[float, float]]) -> Any:
    """One budget for the process per set of limits: every client of a subscription draws from it."""
    key = tuple(sorted((kind, size, refill) for kind, (size, refill) in limits.items()))
    with _lock:
        budget = _budgets.get(key)
        if budget is None:
            from .budget import ArmBudget, Rate

            budget = _budgets[key] = ArmBudget({kind: Rate(size, refill) for kind, size, refill in key})
        return budget


def _key(kind: str, settings: Settings, subscription: str) -> tuple[str, ...]:
    return (
        kind,
        settings.arm_endpoint,
        settings.arm_ca_bundle or "",
        settings.managed_identity_client_id or "",
        subscription.lower(),
    )


def _cached(kind: str, settings: Settings, subscription: str, make: Callable[..., Any]) -> Any:
    """One client per kind, endpoint, identity and subscription, made on first use (``make`` imports)."""
    key = _key(kind, settings, subscription)
    with _lock:
        client = _clients.get(key)
    if client is None:
        client = make()(credential(settings), subscription, **_options(settings))
        with _lock:
            client = _clients.setdefault(key, client)
    return client


def compute_client(settings: Settings, subscription: str) -> Any:
    """A ``ComputeManagementClient`` for one subscription (cached)."""

    def make() -> Any:
        from azure.mgmt.compute import ComputeManagementClient

        modelrace.guard("compute")
        return ComputeManagementClient

    return _cached("compute", settings, subscription, make)


def network_client(settings: Settings, subscription: str) -> Any:
    """A ``NetworkManagementClient`` for one subscription (cached)."""

    def make() -> Any:
        from azure.mgmt.network import NetworkManagementClient

        modelrace.guard("network")
        return NetworkManagementClient

    return _cached("network", settings, subscription, make)


def alerts_client(settings: Settings, subscription: str) -> Any:
    """An ``AlertsManagementClient`` for one subscription (cached); it also reads alert rules."""

    def make() -> Any:
        from azure.mgmt.alertsmanagement import AlertsManagementClient

        return AlertsManagementClient

    return _cached("alerts", settings, subscription, make)


def clear_cache() -> None:
    """Forget every client (tests that start a new emulator on another port)."""
    with _lock:
        clients = list(_clients.values())
        _clients.clear()
        _credentials.clear()
    for client in clients:
        close = getattr(client, "close", None)
        if close is not None:
            close()
