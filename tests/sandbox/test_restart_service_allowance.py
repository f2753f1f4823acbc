"""restart-service by allowance: what a unit does when it starts decides, not a list of bad names.

The stand-in's `systemctl show` reports properties parsed from unit files: the guest's real ones
(systemd-exit.service, modprobe@.service, user@.service as Debian ships them) or a test's own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from localfleet.sandbox import GuestSpec

from .conftest import MakeSandbox, run_raw, run_script

SYSTEM_UNITS = Path("/lib/systemd/system")


def real_unit(name: str) -> str:
    path = SYSTEM_UNITS / name
    if not path.is_file():
        pytest.skip(f"this machine has no {path} to read")
    return path.read_text()


def restart(box, name: str, allowed: str = "") -> dict[str, object]:
    env = {"SERVICE_NAME": name, "ALLOWED_UNITS": allowed, "DRY_RUN": "0"}
    return run_raw(box, "restart-service", env).result


def test_the_reported_attack_systemd_exit_is_refused_even_when_allowed(make_sandbox: MakeSandbox) -> None:
    real_unit("systemd-exit.service")
    box = make_sandbox(
        GuestSpec(services=(("systemd-exit", "inactive"),), unit_files=(("systemd-exit", "static"),))
    )

    for allowed in ("", "systemd-exit"):
        result = restart(box, "systemd-exit", allowed)
        assert result["status"] == "error"
        assert str(result["reason"]).startswith("refusing systemd-exit.service"), result

    assert box.unit_state("systemd-exit") == "inactive"


def test_a_unit_behind_another_name_with_systemd_exits_file_is_refused_for_its_success_action(
    make_sandbox: MakeSandbox,
) -> None:
    text = real_unit("systemd-exit.service")
    box = make_sandbox(GuestSpec(services=(("appd", "inactive"),), unit_texts=(("appd", text),)))

    result = restart(box, "appd", "appd")

    assert (
        result["reason"] == "refusing appd.service: SuccessAction=exit-force (its start can end the system)"
    )
    assert box.unit_state("appd") == "inactive"


def test_modprobe_instances_are_refused_for_their_default_dependencies_even_when_allowed(
    make_sandbox: MakeSandbox,
) -> None:
    real_unit("modprobe@.service")
    box = make_sandbox(GuestSpec(services=(("modprobe@dm_mod", "inactive"),)))

    result = restart(box, "modprobe@dm_mod", "modprobe@dm_mod")

    assert result["reason"] == (
        "refusing modprobe@dm_mod.service: DefaultDependencies=no (an early-boot or shutdown unit)"
    )
    assert box.unit_state("modprobe@dm_mod") == "inactive"


def test_a_root_session_manager_instance_is_refused_as_a_template_instance(make_sandbox: MakeSandbox) -> None:
    real_unit("user@.service")
    box = make_sandbox(GuestSpec(services=(("user@0", "inactive"),)))

    result = restart(box, "user@0")

    assert result["reason"] == "refusing user@0.service: a template instance, and not on the allow list"
    assert box.unit_state("user@0") == "inactive"


ENDING = [
    ("FailureAction=reboot", "FailureAction=reboot"),
    ("SuccessAction=poweroff-force", "SuccessAction=poweroff-force"),
    ("StartLimitAction=reboot-immediate", "StartLimitAction=reboot-immediate"),
    ("JobTimeoutAction=exit", "JobTimeoutAction=exit"),
    ("Wants=poweroff.target", "Wants=poweroff.target"),
    ("Requires=network.target reboot.target", "Requires=reboot.target"),
    ("BindsTo=halt.target", "BindsTo=halt.target"),
    ("Requisite=kexec.target", "Requisite=kexec.target"),
    ("PartOf=exit.target", "PartOf=exit.target"),
    ("After=shutdown.target", "After=shutdown.target"),
    ("OnFailure=emergency.target", "OnFailure=emergency.target"),
    ("OnSuccess=rescue.target", "OnSuccess=rescue.target"),
    ("Wants=systemd-poweroff.service", "Wants=systemd-poweroff.service"),
    ("DefaultDependencies=no", "DefaultDependencies=no (an early-boot or shutdown unit)"),
]


@pytest.mark.parametrize(("setting", "reason"), ENDING, ids=[s for s, _ in ENDING])
def test_an_enabled_failed_unit_whose_start_can_end_the_system_is_refused(
    make_sandbox: MakeSandbox, setting: str, reason: str
) -> None:
    text = f"[Unit]\nDescription=app\n{setting}\n\n[Service]\nExecStart=/usr/bin/appd\n"
    box = make_sandbox(GuestSpec(services=(("appd", "failed"),), unit_texts=(("appd", text),)))

    result = restart(box, "appd", "appd")

    assert result["status"] == "error"
    assert str(result["reason"]).startswith(f"refusing appd.service: {reason}"), result
    assert box.unit_state("appd") == "failed"


def test_a_drop_in_can_make_a_unit_refused(make_sandbox: MakeSandbox, tmp_path: Path) -> None:
    # Drop-ins count like the unit file: systemd merges them, so the stand-in does too.
    box = make_sandbox(GuestSpec(services=(("appd", "failed"),), unit_texts=(("appd", "[Unit]\n"),)))
    drop_in = box.state_dir / "unitfiles" / "appd.service.d"
    drop_in.mkdir()
    (drop_in / "override.conf").write_text("[Unit]\nFailureAction=poweroff\n")

    result = restart(box, "appd")

    assert result["reason"] == "refusing appd.service: FailureAction=poweroff (its start can end the system)"


def test_an_ordinary_enabled_failed_service_with_its_implicit_shutdown_ordering_is_restarted(
    make_sandbox: MakeSandbox,
) -> None:
    # Every service carries Before= and Conflicts=shutdown.target: that alone is not a refusal.
    text = "[Unit]\nDescription=web\nAfter=network-online.target\nWants=network-online.target\n"
    box = make_sandbox(GuestSpec(services=(("nginx", "failed"),), unit_texts=(("nginx", text),)))

    run = run_script(box, "restart-service", {"serviceName": "nginx"})

    assert run.status == "fixed"
    assert box.unit_state("nginx") == "active"


def test_a_disabled_unit_on_the_allow_list_is_restarted(make_sandbox: MakeSandbox) -> None:
    box = make_sandbox(GuestSpec(services=(("batchd", "inactive"),), unit_files=(("batchd", "disabled"),)))

    run = run_script(
        box, "restart-service", {"serviceName": "batchd", "allowedUnits": "other,batchd.service"}
    )

    assert run.status == "fixed"


@pytest.mark.parametrize("allowed", ["a..b", "a b", "a;reboot", "x,", ",x", "a,$(id)"])
def test_a_malformed_allow_list_is_refused_by_the_script(make_sandbox: MakeSandbox, allowed: str) -> None:
    box = make_sandbox(GuestSpec(services=(("batchd", "inactive"),), unit_files=(("batchd", "static"),)))

    result = restart(box, "batchd", allowed)

    assert result["reason"] == "ALLOWED_UNITS must be a comma-separated list of unit names"
    assert box.unit_state("batchd") == "inactive"
