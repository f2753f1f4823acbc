"""The ARM clients honour the process's proxy settings as ``requests`` would on every request, though they
read them once, when a client is made (``settings.http_environment``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from localfleet.server import FleetServer

from autoremediation.azure import clients
from autoremediation.azure.calls import Retrier
from autoremediation.azure.compute import AzureCompute
from autoremediation.errors import SetupProblem, Transient
from autoremediation.settings import Settings
from tests.helpers.environment import clear_http_environment, closed_port

from .conftest import SUB

pytestmark = pytest.mark.fleet

VM = f"/subscriptions/{SUB}/resourceGroups/rg-demo/providers/Microsoft.Compute/virtualMachines/vm-linux-disk"


@pytest.fixture(autouse=True)
def fresh_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    clear_http_environment(monkeypatch)
    clients.clear_cache()  # a client is made with the environment of its first use
    yield
    clients.clear_cache()


def _compute(fleet: FleetServer, ca_bundle: str | None = "fleet") -> AzureCompute:
    bundle = fleet.ca_bundle if ca_bundle == "fleet" else ca_bundle
    settings = Settings(arm_endpoint=fleet.base_url, arm_ca_bundle=bundle)
    return AzureCompute(settings, retrier=Retrier(attempts=1, sleep=lambda _: None))


def test_arm_requests_go_through_the_environments_proxy(
    fleet: FleetServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(Transient, match="connection failed"):
        _compute(fleet).get_vm(VM)


def test_a_no_proxy_host_is_reached_directly(fleet: FleetServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    facts = _compute(fleet).get_vm(VM)
    assert (facts.name, facts.power_state) == ("vm-linux-disk", "running")


def test_remediation_arm_ca_bundle_wins_over_the_environments(
    fleet: FleetServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import certifi  # a bundle without the fleet's CA: verifying with it fails

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    assert _compute(fleet).get_vm(VM).name == "vm-linux-disk"
    clients.clear_cache()
    with pytest.raises(SetupProblem, match="does not verify"):
        _compute(fleet, ca_bundle=None).get_vm(VM)


def test_without_remediation_arm_ca_bundle_the_environments_bundle_verifies(
    fleet: FleetServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", fleet.ca_bundle)
    assert _compute(fleet, ca_bundle=None).get_vm(VM).name == "vm-linux-disk"
