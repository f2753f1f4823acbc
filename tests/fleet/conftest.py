"""Fixtures for tests that drive the real SDK clients over HTTPS against the local ARM emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from localfleet.fleetfile import parse_fleet
from localfleet.server import FleetServer

from autoremediation.azure import clients
from autoremediation.azure.alerts import AzureAlerts
from autoremediation.azure.calls import Retrier
from autoremediation.azure.compute import AzureCompute
from autoremediation.azure.network import AzureNetwork
from autoremediation.settings import Settings

SUB = "00000000-0000-0000-0000-000000000001"
RG = f"/subscriptions/{SUB}/resourceGroups/rg-demo"


def vm_id(name: str, rg: str = "rg-demo") -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}"


def nsg_id(name: str = "nsg-demo") -> str:
    return f"{RG}/providers/Microsoft.Network/networkSecurityGroups/{name}"


def small_fleet(*vms: dict[str, Any], faults: list[dict[str, Any]] | None = None) -> Any:
    """A one-group fleet with the given VM declarations (fleet file spelling)."""
    doc: dict[str, Any] = {
        "subscriptions": [
            {
                "id": SUB,
                "resourceGroups": [
                    {"name": "rg-demo", "location": "westeurope", "virtualMachines": list(vms)}
                ],
            }
        ],
    }
    if faults:
        doc["faults"] = faults
    return parse_fleet(doc, "test-fleet.yaml")


class Sleeps:
    """Records the delays a Retrier asked for, without waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def fleet() -> Iterator[FleetServer]:
    """The demo fleet; Linux VMs answer declared outcomes (the sandbox tests opt in themselves)."""
    with FleetServer(sandbox=False) as server:
        yield server


@pytest.fixture
def settings(fleet: FleetServer) -> Settings:
    return Settings(arm_endpoint=fleet.base_url, arm_ca_bundle=fleet.ca_bundle)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def compute(settings: Settings, sleeps: Sleeps) -> AzureCompute:
    return AzureCompute(settings, polling_interval=0, retrier=Retrier(sleep=sleeps))


@pytest.fixture
def classic(settings: Settings, sleeps: Sleeps) -> AzureCompute:
    return AzureCompute(settings, mode="action", polling_interval=0, retrier=Retrier(sleep=sleeps))


@pytest.fixture
def network(settings: Settings, sleeps: Sleeps) -> AzureNetwork:
    return AzureNetwork(settings, polling_interval=0, retrier=Retrier(sleep=sleeps))


@pytest.fixture
def alerts(settings: Settings, sleeps: Sleeps) -> AzureAlerts:
    return AzureAlerts(settings, retrier=Retrier(sleep=sleeps))


@pytest.fixture
def sdk(fleet: FleetServer) -> Any:
    """The raw ComputeManagementClient, for route-level tests."""
    from azure.mgmt.compute import ComputeManagementClient
    from localfleet.credential import FleetCredential

    return ComputeManagementClient(
        FleetCredential(),
        fleet.subscription,
        base_url=fleet.base_url,
        connection_verify=fleet.ca_bundle,
        retry_total=0,
        polling_interval=0,
    )


@pytest.fixture
def netsdk(fleet: FleetServer) -> Any:
    from azure.mgmt.network import NetworkManagementClient
    from localfleet.credential import FleetCredential

    return NetworkManagementClient(
        FleetCredential(),
        fleet.subscription,
        base_url=fleet.base_url,
        connection_verify=fleet.ca_bundle,
        retry_total=0,
        polling_interval=0,
    )


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    yield
    clients.clear_cache()


REPO_ROOT = Path(__file__).resolve().parents[2]
