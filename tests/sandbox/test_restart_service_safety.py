"""restart-service refuses what would power off, reboot or isolate the VM, and what an admin turned off.

The names are passed to the script directly, skipping the catalog's pattern, so the script's own
checks are what is tested. Every refused unit exists in the guest: a refusal is never just "not found".
"""

from __future__ import annotations

from pathlib import Path

import pytest
from localfleet.sandbox import GuestSpec, Sandbox

from autoremediation.errors import InvalidInput

from .conftest import MakeSandbox, run_raw, run_script, tree

# Units whose start ends or isolates the VM, as a caller that skipped validation could name them.
DANGEROUS = (
    "poweroff.target",
    "reboot.target",
    "halt.target",
    "kexec.target",
    "emergency.target",
    "rescue.target",
    "ctrl-alt-del.target",
    "systemd-poweroff.service",
    "systemd-reboot.service",
    "systemd-halt.service",
    "systemd-kexec.service",
    "systemd-soft-reboot.service",
    "systemd-suspend.service",
    "systemd-hibernate.service",
    "emergency.service",
    "rescue",
    "debug-shell.service",
    "sendsigs",
    "initrd-switch-root.service",
    "systemd-poweroff",
    "tmp.mount",
    "ssh.socket",
    "apt-daily.timer",
)


def restart(box: Sandbox, name: str) -> dict[str, object]:
    return run_raw(box, "restart-service", {"SERVICE_NAME": name, "DRY_RUN": "0"}).result


def test_units_that_end_or_isolate_the_vm_are_refused_and_nothing_starts(
    make_sandbox: MakeSandbox,
) -> None:
    box = make_sandbox(GuestSpec(services=tuple((name, "inactive") for name in DANGEROUS)))
    units = tree(box.state_dir / "units")

    for name in DANGEROUS:
        result = restart(box, name)
        assert result["status"] == "error", name
        assert str(result["reason"]).startswith("refusing "), (name, result["reason"])

    assert tree(box.state_dir / "units") == units
    assert all(box.unit_state(name) == "inactive" for name in DANGEROUS)


def test_an_alias_of_a_reboot_service_is_refused(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(
        GuestSpec(services=(("systemd-reboot", "inactive"),), unit_aliases=(("appd", "systemd-reboot"),))
    )

    result = restart(box, "appd.service")

    assert result["status"] == "error"
    assert "systemd-reboot.service" in str(result["reason"])
    assert box.unit_state("systemd-reboot") == "inactive"


def test_a_name_that_resolves_to_something_other_than_a_service_is_refused(
    make_sandbox: MakeSandbox,
) -> None:
    box = make_sandbox(
        GuestSpec(
            services=(("graphical.target", "inactive"),), unit_aliases=(("desktop", "graphical.target"),)
        )
    )

    result = restart(box, "desktop")

    assert result["status"] == "error"
    assert "does not resolve to a plain service unit" in str(result["reason"])
    assert box.unit_state("graphical.target") == "inactive"


@pytest.mark.parametrize("file_state", ["disabled", "masked"])
def test_a_unit_an_admin_disabled_or_masked_is_left_alone(make_sandbox: MakeSandbox, file_state: str) -> None:
    box = make_sandbox(GuestSpec(services=(("appd", "failed"),), unit_files=(("appd", file_state),)))
    units = tree(box.state_dir / "units")

    result = restart(box, "appd")

    assert result["status"] == "error"
    assert f"the unit is {file_state}" in str(result["reason"])
    assert box.unit_state("appd") == "failed"
    assert tree(box.state_dir / "units") == units


def test_a_static_unit_is_restarted_only_when_allowed(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec(services=(("worker", "failed"),), unit_files=(("worker", "static"),)))

    refused = run_script(box, "restart-service", {"serviceName": "worker.service"})
    assert refused.status == "error"
    assert refused.result["reason"] == (
        "refusing worker.service: the unit is static, not enabled, and not on the allow list"
    )
    assert box.unit_state("worker") == "failed"

    run = run_script(box, "restart-service", {"serviceName": "worker.service", "allowedUnits": "worker"})

    assert run.status == "fixed"
    assert box.unit_state("worker") == "active"


def test_a_template_instance_is_restarted_only_when_allowed(make_sandbox: MakeSandbox) -> None:
    # getty@.service is the guest's real unit file (read by the stand-in's `systemctl show`).
    box = make_sandbox(GuestSpec(services=(("getty@tty1", "failed"),)))

    refused = run_script(box, "restart-service", {"serviceName": "getty@tty1.service"})
    assert refused.status == "error"
    assert (
        refused.result["reason"]
        == "refusing getty@tty1.service: a template instance, and not on the allow list"
    )
    assert box.unit_state("getty@tty1") == "failed"

    run = run_script(
        box,
        "restart-service",
        {"serviceName": "getty@tty1.service", "allowedUnits": "nginx,getty@tty1.service"},
    )

    assert run.status == "fixed"
    assert run.result["unit"] == "getty@tty1"
    assert box.unit_state("getty@tty1") == "active"


def test_an_alias_restarts_the_unit_it_names(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec(services=(("nginx", "failed"),), unit_aliases=(("www", "nginx"),)))

    run = run_script(box, "restart-service", {"serviceName": "www"})

    assert run.status == "fixed"
    assert run.result["unit"] == "nginx"
    assert box.unit_state("nginx") == "active"


@pytest.mark.parametrize(
    "spec",
    [
        GuestSpec(unit_files=(("nginx", "disabled"),)),  # not a declared unit
        GuestSpec(services=(("nginx", "failed"),), unit_files=(("nginx", "frozen"),)),
        GuestSpec(unit_aliases=(("www", "nginx"),)),
        GuestSpec(services=(("nginx", "failed"),), unit_aliases=(("nginx.service", "nginx"),)),
        GuestSpec(services=(("../escape", "failed"),)),
    ],
)
def test_unit_declarations_the_stand_in_cannot_honour_are_refused(tmp_path: Path, spec: GuestSpec) -> None:
    box = Sandbox("vm", spec, tmp_path / "box")

    with pytest.raises(InvalidInput):
        box.start()

    assert not (tmp_path / "box").exists()
