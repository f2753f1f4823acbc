"""Hostile parameter values sent straight to the scripts, skipping the catalog's patterns.

The values arrive the way the dispatcher passes them (environment variables). Whatever they say, a
script must refuse them with a clean `error` result, create nothing and delete nothing.
"""

from __future__ import annotations

import pytest
from localfleet.sandbox import DiskSpec, GuestSpec, Sandbox

from autoremediation.catalog import UPLOAD_PARAMETERS, env_name

from .conftest import CATALOG, MakeSandbox, run_raw, tree

CANARY = "/tmp/pwned"
HOSTILE = (
    f"$(touch {CANARY})",
    f"`touch {CANARY}`",
    f"; touch {CANARY}",
    f"/var; touch {CANARY}",
    f"/var && touch {CANARY}",
    f"/var | touch {CANARY}",
    f"/var\ntouch {CANARY}",
    f"a[$(touch {CANARY})]",  # bash evaluates array subscripts inside arithmetic
    f"x[$(touch {CANARY})]+20",
    "20 -o 1",
    "/var/lib/appdata/../..",
    "../../../var/lib/appdata",
    "/var/lib/appdata",
    f"> {CANARY}",
    "' -delete -o '",
    '" -delete -o "',
    "-delete",
    "",
)
# Parameters the engine always sends, plus DRY_RUN.
VALID_ENV = {
    "free-disk-space": {
        "MOUNT_POINT": "/var",
        "TARGET_FREE_PERCENT": "20",
        "OLDER_THAN_DAYS": "7",
        "PRUNE_CONTAINER_IMAGES": "false",
        "DRY_RUN": "0",
    },
    "restore-management-access": {"PORT": "22", "MANAGEMENT_SOURCES": "10.1.0.0/24", "DRY_RUN": "0"},
    "restart-service": {"SERVICE_NAME": "nginx", "ALLOWED_UNITS": "nginx", "DRY_RUN": "0"},
    "fix-time-sync": {"DRY_RUN": "0"},
    "collect-diagnostics": {
        "UPLOAD_URL": "https://diagstore01.blob.core.windows.net/diagnostics/a.tar.gz",
        "UPLOAD_TOKEN": "c3Y9MSZzaWc9eA==",  # base64 of "sv=1&sig=x"
        "MAX_LOG_LINES": "200",
        "DRY_RUN": "0",
    },
}
# The mount check refuses this one as "not a mount point", which is the error we want.
ALLOWED_BY_SYNTAX = {("free-disk-space", "MOUNT_POINT", "/var/lib/appdata")}
# Optional lists whose empty value is valid (no allowance, no sources): "" is no attack on them.
EMPTY_IS_VALID = {("restart-service", "ALLOWED_UNITS"), ("restore-management-access", "MANAGEMENT_SOURCES")}


@pytest.mark.parametrize("remediation_id", sorted(VALID_ENV))
def test_the_valid_parameters_pass_validation(make_sandbox: MakeSandbox, remediation_id: str) -> None:
    # Otherwise every hostile value below would be refused for the wrong reason.
    box = make_sandbox(GuestSpec(ssh_listening=False))
    run = run_raw(box, remediation_id, {**VALID_ENV[remediation_id], "DRY_RUN": "1"})
    assert "must be" not in str(run.result.get("reason", "")), run.result


def test_every_parameter_of_the_catalog_is_covered() -> None:
    for remediation_id in CATALOG.remediations:
        remediation = CATALOG.get(remediation_id)
        uploads = set(UPLOAD_PARAMETERS) if remediation.upload_to else set()
        declared = {env_name(p) for p in [*remediation.parameters, *uploads]} | {"DRY_RUN"}
        assert set(VALID_ENV[remediation_id]) == declared, remediation_id


@pytest.mark.parametrize("remediation_id", sorted(VALID_ENV))
def test_hostile_values_are_refused_without_side_effects(
    make_sandbox: MakeSandbox, remediation_id: str
) -> None:
    box: Sandbox = make_sandbox(
        GuestSpec(
            disks=(DiskSpec("/var", 32, 90),),
            firewall_drop_ports=(22,),
            services=(("nginx", "failed"), ("chrony", "inactive")),
        )
    )
    var_before = tree(box.host_path("/var"))
    rules = box.firewall_rules()
    units = tree(box.state_dir / "units")

    for name in VALID_ENV[remediation_id]:
        for value in HOSTILE:
            if value == "" and (remediation_id, name) in EMPTY_IS_VALID:
                continue
            env = {**VALID_ENV[remediation_id], name: value}
            run = run_raw(box, remediation_id, env)
            where = f"{remediation_id} {name}={value!r}"
            assert run.status == "error", where
            if (remediation_id, name, value) not in ALLOWED_BY_SYNTAX:
                # Refused for this parameter, not for another one of the valid set.
                assert run.result["reason"].startswith(f"{name} must be"), (where, run.result["reason"])
            assert not box.host_path(CANARY).exists(), where
        # Side effects persist, so checking once per parameter still catches any value's.
        assert tree(box.host_path("/var")) == var_before, name
        assert box.firewall_rules() == rules, name
        assert tree(box.state_dir / "units") == units, name
