from __future__ import annotations

from pathlib import Path

import pytest

from autoremediation.catalog import ParameterError, env_name, script_parameter_name
from autoremediation.catalog_load import catalog_problems, load_catalog
from autoremediation.errors import CatalogError, InvalidInput, UnknownRemediation
from tests.helpers.catalogs import access_remediation, base_remediation, make_catalog, write_remediation


@pytest.fixture
def catalog(tmp_path: Path):
    return load_catalog(make_catalog(tmp_path / "catalog"))


def test_loads_remediations_with_their_declarations(catalog) -> None:
    assert sorted(catalog.remediations) == ["free-disk-space", "restore-management-access"]
    disk = catalog.get("free-disk-space")
    assert disk.conditions == ("disk-full",)
    assert disk.os_types == ("linux", "windows")
    assert disk.parameters["targetFreePercent"].maximum == 90
    assert not disk.approval_required
    assert catalog.get("restore-management-access").approval_required
    assert catalog.get("restore-management-access").control_plane == ("nsg-allow-management",)


def test_unknown_remediation_names_it_and_the_known_ones(catalog) -> None:
    with pytest.raises(UnknownRemediation, match=r"'reboot-everything'.*free-disk-space"):
        catalog.get("reboot-everything")


def test_condition_lookup(catalog) -> None:
    assert catalog.for_condition("disk-full").id == "free-disk-space"
    assert catalog.for_condition("nsg-lockout").id == "restore-management-access"
    assert catalog.for_condition("cpu-hot") is None
    assert catalog.conditions == {"disk-full", "nsg-lockout"}


def test_high_risk_needs_approval_even_when_auto(tmp_path: Path) -> None:
    data = base_remediation(risk="high")
    cat = load_catalog(make_catalog(tmp_path / "c", data, access_remediation()))
    assert cat.get("free-disk-space").approval_required
    data = base_remediation(id="medium-one", risk="medium", approval="required")
    cat = load_catalog(make_catalog(tmp_path / "d", base_remediation(), data, access_remediation()))
    assert cat.get("medium-one").approval_required
    assert not cat.get("free-disk-space").approval_required


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.pop("risk"), r"free-disk-space/remediation.yaml: \(top level\): 'risk' is a required"),
        (lambda d: d.update(risk="extreme"), r"remediation.yaml: risk: 'extreme' is not one of"),
        (lambda d: d.update(surprise=1), r"Additional properties are not allowed \('surprise'"),
        (lambda d: d["parameters"]["mountPoint"].pop("pattern"), r"parameters.mountPoint"),
        (lambda d: d.update(timeoutSeconds=10), r"timeoutSeconds: 10 is less than the minimum of 60"),
        (lambda d: d.update(id="other-id"), r"id: 'other-id' must equal its folder name"),
        (lambda d: d["parameters"]["mountPoint"].update(pattern="(unclosed"), r"pattern"),
        (
            lambda d: d["parameters"]["mountPoint"].update(default="relative/path"),
            r"parameters.mountPoint.default: parameter 'mountPoint': 'relative/path' does not match",
        ),
        (
            lambda d: d["verification"]["expect"][0].update(parameter="nope"),
            r"parameter 'nope' is not declared",
        ),
    ],
)
def test_invalid_remediation_is_reported_with_file_and_field(tmp_path: Path, mutate, expected) -> None:
    data = base_remediation()
    mutate(data)
    root = make_catalog(tmp_path / "c", access_remediation())
    if data.get("id") != "other-id":
        write_remediation(root, data)
    else:
        folder = write_remediation(root, {**data, "id": "free-disk-space"})
        (folder / "remediation.yaml").write_text(
            (folder / "remediation.yaml").read_text().replace("id: free-disk-space", "id: other-id")
        )
    problems, loaded = catalog_problems(root)
    assert any(__import__("re").search(expected, p) for p in problems), problems
    assert "free-disk-space" not in loaded and "other-id" not in loaded
    assert "restore-management-access" in loaded
    with pytest.raises(CatalogError):
        load_catalog(root)


def test_missing_script_and_readme_are_problems(tmp_path: Path) -> None:
    root = make_catalog(tmp_path / "c", access_remediation())
    write_remediation(root, base_remediation(), scripts=False, readme=False)
    problems, _ = catalog_problems(root)
    joined = "\n".join(problems)
    assert "os.linux.script: linux.sh does not exist" in joined
    assert "os.windows.script: windows.ps1 does not exist" in joined
    assert "README.md: missing" in joined


def test_not_a_catalog_folder(tmp_path: Path) -> None:
    problems, loaded = catalog_problems(tmp_path)
    assert problems == [f"{tmp_path}: not a catalog folder (no remediation.schema.json)"]
    assert loaded == {}


def test_broken_yaml_names_the_file(tmp_path: Path) -> None:
    root = make_catalog(tmp_path / "c")
    (root / "free-disk-space" / "remediation.yaml").write_text("id: [unclosed\n")
    problems, loaded = catalog_problems(root)
    assert len(problems) == 1 and "free-disk-space/remediation.yaml: not valid YAML" in problems[0]
    assert list(loaded) == ["restore-management-access"]


class TestParameters:
    def test_defaults_fill_in_and_values_become_text(self, catalog) -> None:
        disk = catalog.get("free-disk-space")
        assert disk.resolve_parameters({}) == {"mountPoint": "/", "targetFreePercent": "20"}
        assert disk.resolve_parameters({"mountPoint": "/var", "targetFreePercent": 35}) == {
            "mountPoint": "/var",
            "targetFreePercent": "35",
        }
        assert disk.resolve_parameters({"mountPoint": "C:"})["mountPoint"] == "C:"

    def test_os_default(self, catalog) -> None:
        access = catalog.get("restore-management-access")
        assert access.resolve_parameters({}, "linux") == {"port": "22"}
        assert access.resolve_parameters({}, "windows") == {"port": "3389"}
        assert access.resolve_parameters({}, None) == {}
        assert access.resolve_parameters({"port": "3389"}, "linux") == {"port": "3389"}

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("/var; rm -rf /", "does not match"),
            ("/var/../etc", "does not match"),
            ("/var/$(reboot)", "does not match"),
            ("var", "does not match"),
            ("/var\n", "does not match"),
            ("C:\\Windows", "does not match"),
            (["/var"], "must be a string, not list"),
            ({"a": 1}, "must be a string, not dict"),
        ],
    )
    def test_hostile_mount_points_are_refused(self, catalog, value, message) -> None:
        with pytest.raises(ParameterError, match=message) as caught:
            catalog.get("free-disk-space").resolve_parameters({"mountPoint": value})
        assert caught.value.parameter == "mountPoint"
        assert isinstance(caught.value, InvalidInput)

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("4", "below the minimum 5"),
            ("91", "above the maximum 90"),
            ("1e3", "not an integer"),
            (True, "not a boolean"),
            ("20; reboot", "not an integer"),
            ("", None),
        ],
    )
    def test_integer_bounds(self, catalog, value, message) -> None:
        disk = catalog.get("free-disk-space")
        if message is None:
            assert disk.resolve_parameters({"targetFreePercent": value})["targetFreePercent"] == "20"
            return
        with pytest.raises(ParameterError, match=message):
            disk.resolve_parameters({"targetFreePercent": value})

    def test_bounds_are_inclusive(self, catalog) -> None:
        disk = catalog.get("free-disk-space")
        assert disk.resolve_parameters({"targetFreePercent": 5})["targetFreePercent"] == "5"
        assert disk.resolve_parameters({"targetFreePercent": "90"})["targetFreePercent"] == "90"

    def test_enum(self, catalog) -> None:
        access = catalog.get("restore-management-access")
        with pytest.raises(ParameterError, match="'8080' is not one of 22, 3389"):
            access.resolve_parameters({"port": 8080}, "linux")

    def test_unknown_parameter_is_named(self, catalog) -> None:
        with pytest.raises(ParameterError, match="parameter 'script': is not a parameter of free-disk-space"):
            catalog.get("free-disk-space").resolve_parameters({"script": "rm -rf /"})

    def test_long_hostile_value_is_cut_in_the_message(self, catalog) -> None:
        with pytest.raises(ParameterError) as caught:
            catalog.get("free-disk-space").resolve_parameters({"mountPoint": "/" + "x;" * 500})
        assert len(str(caught.value)) < 250

    def test_required_parameter(self, tmp_path: Path) -> None:
        data = base_remediation()
        data["parameters"]["mountPoint"] = {
            "type": "string",
            "description": "m",
            "pattern": "^/$",
            "required": True,
        }
        cat = load_catalog(make_catalog(tmp_path / "c", data, access_remediation()))
        with pytest.raises(ParameterError, match="'mountPoint': is required"):
            cat.get("free-disk-space").resolve_parameters({})

    def test_boolean_parameter(self, tmp_path: Path) -> None:
        data = base_remediation()
        data["parameters"]["prune"] = {"type": "boolean", "description": "p", "default": False}
        cat = load_catalog(make_catalog(tmp_path / "c", data, access_remediation()))
        disk = cat.get("free-disk-space")
        assert disk.resolve_parameters({})["prune"] == "false"
        assert disk.resolve_parameters({"prune": True})["prune"] == "true"
        assert disk.resolve_parameters({"prune": "1"})["prune"] == "true"
        with pytest.raises(ParameterError, match="not a boolean"):
            disk.resolve_parameters({"prune": "yes please"})


class TestRunParameters:
    def test_linux_gets_upper_snake_environment_names(self, catalog) -> None:
        plain, protected = catalog.get("free-disk-space").run_parameters(
            {"mountPoint": "/var", "targetFreePercent": "20"}, "linux", dry_run=True
        )
        assert plain == {"MOUNT_POINT": "/var", "TARGET_FREE_PERCENT": "20", "DRY_RUN": "1"}
        assert protected == {}

    def test_windows_gets_pascal_case_names(self, catalog) -> None:
        plain, _ = catalog.get("free-disk-space").run_parameters(
            {"mountPoint": "C:"}, "windows", dry_run=False
        )
        assert plain == {"MountPoint": "C:", "DryRun": "0"}

    def test_secret_parameters_are_protected(self, tmp_path: Path) -> None:
        data = base_remediation()
        data["parameters"]["uploadUrl"] = {
            "type": "string",
            "description": "u",
            "pattern": "^https://.+$",
            "secret": True,
        }
        cat = load_catalog(make_catalog(tmp_path / "c", data, access_remediation()))
        plain, protected = cat.get("free-disk-space").run_parameters(
            {"uploadUrl": "https://x/y?sig=s"}, "linux", dry_run=False
        )
        assert protected == {"UPLOAD_URL": "https://x/y?sig=s"}
        assert "UPLOAD_URL" not in plain

    def test_names(self) -> None:
        assert env_name("mountPoint") == "MOUNT_POINT"
        assert env_name("olderThanDays") == "OLDER_THAN_DAYS"
        assert env_name("port") == "PORT"
        assert script_parameter_name("mountPoint") == "MountPoint"


def test_script_text_and_missing_os(catalog) -> None:
    access = catalog.get("restore-management-access")
    assert "REMEDIATION_RESULT" in access.script("linux")
    with pytest.raises(InvalidInput, match="has no script for windows"):
        access.script("windows")


def test_every_dispatch_of_a_loaded_catalog_sends_the_script_the_load_checked(tmp_path: Path) -> None:
    # A script edited on disk while the app runs is never sent, not even before the first dispatch: it
    # takes effect with the catalog loaded (and checked) again.
    root = make_catalog(tmp_path / "c")
    script = root / "restore-management-access" / "linux.sh"
    loaded = script.read_text()
    access = load_catalog(root).get("restore-management-access")
    script.write_text("#!/bin/sh\nreboot\n")
    assert access.script("linux") == loaded
    assert "reboot" not in access.script("linux")


def test_catalog_is_cached(tmp_path: Path) -> None:
    root = make_catalog(tmp_path / "c")
    assert load_catalog(root) is load_catalog(str(root))


def test_summary_is_what_the_api_shows(catalog) -> None:
    summary = catalog.get("free-disk-space").summary()
    assert summary["id"] == "free-disk-space"
    assert summary["approvalRequired"] is False
    assert summary["parameters"]["targetFreePercent"] == {
        "type": "integer",
        "description": "target",
        "minimum": 5,
        "maximum": 90,
        "default": 20,
        "sources": ["operator"],  # not declared: never from an alert
    }
    assert summary["parameters"]["mountPoint"]["sources"] == ["alert", "operator"]


def test_a_long_pattern_is_explained_by_the_description(tmp_path: Path) -> None:
    data = base_remediation()
    data["parameters"]["mountPoint"]["pattern"] = "^(/|(/[a-z]+)+)$" + "|^(?!x)" * 20 + "$"
    data["parameters"]["mountPoint"]["description"] = "An absolute Linux path."
    cat = load_catalog(make_catalog(tmp_path / "c", data, access_remediation()))
    with pytest.raises(ParameterError, match=r"'bad path' does not match An absolute Linux path\.$"):
        cat.get("free-disk-space").resolve_parameters({"mountPoint": "bad path"})


def test_summary_shows_os_defaults(catalog) -> None:
    summary = catalog.get("restore-management-access").summary()
    assert summary["parameters"]["port"]["osDefault"] == {"linux": 22, "windows": 3389}
    assert "osDefault" not in catalog.get("free-disk-space").summary()["parameters"]["mountPoint"]


def test_redaction_hides_secrets_and_anything_the_catalog_cannot_vouch_for(tmp_path: Path) -> None:
    data = base_remediation()
    data["parameters"]["uploadUrl"] = {
        "type": "string",
        "description": "u",
        "pattern": "^https://.+$",
        "secret": True,
    }
    cat = load_catalog(make_catalog(tmp_path / "c", data, access_remediation()))
    shown = cat.redacted(
        "free-disk-space", {"mountPoint": "/var", "uploadUrl": "https://x?sig=s", "extra": "e"}
    )
    assert shown == {"mountPoint": "/var", "uploadUrl": "(secret)", "extra": "(secret)"}
    assert cat.redacted("gone-remediation", {"mountPoint": "/var"}) == {"mountPoint": "(secret)"}
    assert cat.redacted("free-disk-space", None) == {}
