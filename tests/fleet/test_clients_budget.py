"""The ARM request budget sits in every client that talks to Azure, and stays out of the local fleet's."""

from __future__ import annotations

import pytest

from autoremediation.azure import clients
from autoremediation.settings import Settings


def test_azure_clients_spend_the_subscription_budget() -> None:
    options = clients._options(Settings(arm_endpoint="https://management.azure.com"))
    [policy] = options["per_call_policies"]
    assert type(policy).__name__ == "ArmBudgetPolicy"
    again = clients._options(Settings(arm_endpoint="https://management.azure.com"))
    assert again["per_call_policies"][0].budget is policy.budget  # one budget per process
    assert options["retry_total"] == 0


def test_local_fleet_clients_have_no_budget() -> None:
    options = clients._options(Settings(arm_endpoint="https://127.0.0.1:8443", arm_ca_bundle="/tmp/ca.pem"))
    assert "per_call_policies" not in options
    assert options["connection_verify"] == "/tmp/ca.pem"


def test_plain_http_endpoint_is_refused() -> None:
    from autoremediation.errors import InvalidInput

    with pytest.raises(InvalidInput, match="must be an https:// URL"):
        clients._options(Settings(arm_endpoint="http://management.azure.com"))
