"""Safety properties of the catalog that hold without running a script.

restart-service never accepts a unit that powers off, reboots or isolates the VM; free-disk-space
gets a default each OS's script accepts and never follows links on Windows; the Windows guest step of
restore-management-access reports customer block rules instead of touching them.
"""

from __future__ import annotations

import re

import pytest

from autoremediation.catalog import ParameterError
from autoremediation.catalog_load import load_catalog

from .conftest import REMEDIATIONS

CATALOG = load_catalog(REMEDIATIONS)

# What restart-service must refuse whatever the OS: every way to name a unit whose start ends the
# VM's life (power off, reboot, halt, kexec, suspend), isolates it (emergency, rescue), kills or
# unmounts everything, and every unit type other than service.
NOT_SERVICES = (
    "poweroff.target",
    "reboot.target",
    "halt.target",
    "kexec.target",
    "emergency.target",
    "rescue.target",
    "ctrl-alt-del.target",
    "multi-user.target",
    "tmp.mount",
    "proc-sys-fs-binfmt_misc.automount",
    "ssh.socket",
    "apt-daily.timer",
    "user.slice",
    "session-1.scope",
    "dev-sda1.device",
    "swapfile.swap",
    "cups.path",
    "getty@tty1.target",
)
DENIED_SERVICES = (
    "systemd-poweroff",
    "systemd-reboot",
    "systemd-halt",
    "systemd-kexec",
    "systemd-soft-reboot",
    "systemd-suspend",
    "systemd-hibernate",
    "systemd-hybrid-sleep",
    "systemd-suspend-then-hibernate",
    "emergency",
    "rescue",
    "debug-shell",
    "halt",
    "reboot",
    "poweroff",
    "kexec",
    "sendsigs",
    "killprocs",
    "umountfs",
    "umountnfs",
    "umountroot",
    "initrd-switch-root",
    "initrd-cleanup",
)
ACCEPTED = ("nginx", "nginx.service", "getty@tty1.service", "my-app_2.service", "php8.2-fpm", "W3SVC")


def restart_service_accepts(name: str, os_type: str) -> bool:
    try:
        CATALOG.get("restart-service").resolve_parameters({"serviceName": name}, os_type)
    except ParameterError:
        return False
    return True


@pytest.mark.parametrize("os_type", ["linux", "windows"])
@pytest.mark.parametrize(
    "name", [*NOT_SERVICES, *DENIED_SERVICES, *(f"{name}.service" for name in DENIED_SERVICES)]
)
def test_restart_service_refuses_units_that_end_or_isolate_the_vm(name: str, os_type: str) -> None:
    assert not restart_service_accepts(name, os_type)


@pytest.mark.parametrize("name", ACCEPTED)
def test_restart_service_accepts_plain_and_templated_services(name: str) -> None:
    assert restart_service_accepts(name, "linux")
    assert restart_service_accepts(name, "windows")


def test_services_that_only_start_like_a_denied_one_are_still_accepted() -> None:
    # The deny list names whole units: a prefix must not take an ordinary service with it.
    for name in ("rescue-agent", "reboot-notifier.service", "systemd-rebootd", "halting-problem"):
        assert restart_service_accepts(name, "linux"), name


def windows_refused_services() -> list[str]:
    text = (REMEDIATIONS / "restart-service" / "windows.ps1").read_text()
    block = re.search(r"\$refused = @\((.*?)\)", text, flags=re.DOTALL)
    assert block, "restart-service/windows.ps1 has no $refused list"
    return re.findall(r"'([A-Za-z0-9_]+)'", block.group(1))


def test_windows_restart_refuses_the_firewall_and_update_services_and_documents_them() -> None:
    refused = windows_refused_services()
    assert {"MpsSvc", "BFE", "wuauserv", "UsoSvc"} <= set(refused)
    readme = (REMEDIATIONS / "restart-service" / "README.md").read_text()
    missing = [name for name in refused if f"`{name}`" not in readme]
    assert missing == [], f"README does not list {missing}"


def script_check(remediation_id: str, script: str, pattern: str) -> re.Pattern[str]:
    """The regular expression a script validates a parameter with, as Python reads it."""
    text = (REMEDIATIONS / remediation_id / script).read_text()
    found = re.search(pattern, text)
    assert found, f"{remediation_id}/{script}: no parameter check found"
    return re.compile(found.group(1))


def test_free_disk_space_defaults_to_a_drive_on_windows_and_to_root_on_linux() -> None:
    remediation = CATALOG.get("free-disk-space")
    windows = remediation.resolve_parameters({}, "windows")["mountPoint"]
    linux = remediation.resolve_parameters({}, "linux")["mountPoint"]

    assert re.fullmatch(r"[A-Za-z]:", windows)
    assert linux == "/"
    # Each script's own check accepts the default it is sent.
    assert script_check("free-disk-space", "windows.ps1", r"\$MountPoint -notmatch '([^']+)'").fullmatch(
        windows
    )
    assert script_check("free-disk-space", "linux.sh", r'"\$MOUNT_POINT" =~ (\S+) \]\]').fullmatch(linux)


def test_free_disk_space_has_no_default_that_one_os_would_refuse() -> None:
    # Without an OS the value stays open: the job resolves it for the VM it runs on.
    assert "mountPoint" not in CATALOG.get("free-disk-space").resolve_parameters({})


def powershell_code(remediation_id: str) -> str:
    """The Windows script without its comments, lower-cased."""
    text = (REMEDIATIONS / remediation_id / "windows.ps1").read_text()
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines()).lower()


def test_windows_disk_cleanup_never_recurses_through_links() -> None:
    code = powershell_code("free-disk-space")
    # Windows PowerShell 5.1 follows junctions and directory symlinks when it recurses.
    assert "-recurse" not in code
    assert "reparsepoint" in code
    remove = code.index("remove-item -literalpath $file.fullname")
    # Every file is checked again, just before its delete, to lie under the root and on no link.
    checks = (
        code.rindex("test-inside $file.fullname", 0, remove),
        code.rindex("test-nolinkonpath $file.fullname", 0, remove),
    )
    assert all(remove - at < 400 for at in checks)
    assert code.count("remove-item") == 1


def test_windows_access_step_reports_block_rules_and_never_changes_them() -> None:
    code = powershell_code("restore-management-access")
    assert "-action block" in code and "get-netfirewallportfilter" in code
    for verb in ("remove-netfirewallrule", "disable-netfirewallrule", "enable-netfirewallrule"):
        assert verb not in code, verb
    # The one rule it adds or widens is its own, restricted to the management sources: never the
    # built-in Remote Desktop group (which allows any address), never an unrestricted allow.
    changes = [line for line in code.splitlines() if re.search(r"(new|set)-netfirewallrule", line)]
    assert len(changes) == 2, changes
    for line in changes:
        assert "-name $rulename" in line and "-remoteaddress" in line, line
    assert "$rulename = 'restore-management-access'" in code
    # The port comes from the parameter: 3389 is only its default.
    assert code.count("3389") == 1 and "[string]$port = '3389'" in code
