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


def test_a_fleet_told_to_throttle_gets_the_budget_it_names() -> None:
    local = Settings(arm_endpoint="https://127.0.0.1:8443", arm_limits="reads=500/125,writes=200/50")
    [policy] = clients._options(local)["per_call_policies"]
    limits = policy.budget.limits
    assert limits["reads"].capacity == 500 and limits["writes"].refill_per_second == 50
    assert "deletes" not in policy.budget.limits


def test_azure_with_the_budget_off_has_none() -> None:
    options = clients._options(Settings(arm_endpoint="https://management.azure.com", arm_limits="off"))
    assert "per_call_policies" not in options


@pytest.mark.parametrize("raw", ["reads=0/1", "reads=10", "bytes=1/1", "reads=1/0", "reads=nan/1", "fast"])
def test_arm_limits_setting_refuses_what_it_cannot_read(raw: str) -> None:
    from autoremediation.errors import InvalidInput

    with pytest.raises(InvalidInput, match="REMEDIATION_ARM_LIMITS"):
        Settings.from_env({"REMEDIATION_ARM_LIMITS": raw})
