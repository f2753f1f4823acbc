"""One prelude per shell, joined into every script of that OS by the catalog loader."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autoremediation.catalog import PRELUDE_MARKER, join_prelude
from autoremediation.catalog_load import catalog_problems, load_catalog
from autoremediation.errors import CatalogError
from tests.helpers.catalogs import SHIPPED, base_remediation, make_catalog

SCRIPT = f"#!/bin/bash\n# header\n{PRELUDE_MARKER}\necho body\n"


def test_the_marker_line_is_replaced_by_the_prelude() -> None:
    joined = join_prelude(SCRIPT, "set -eu\nfail() { exit 2; }\n")
    assert joined == "#!/bin/bash\n# header\nset -eu\nfail() { exit 2; }\necho body\n"


def test_without_a_prelude_the_script_is_unchanged() -> None:
    assert join_prelude(SCRIPT, None) == SCRIPT


@pytest.mark.parametrize("script", ["#!/bin/bash\necho body\n", SCRIPT + PRELUDE_MARKER + "\n"])
def test_a_script_without_exactly_one_marker_is_refused(script: str) -> None:
    with pytest.raises(CatalogError, match="exactly once"):
        join_prelude(script, "set -eu\n")


def test_a_missing_marker_is_a_catalog_problem_naming_the_script(tmp_path: Path) -> None:
    root = make_catalog(tmp_path / "c", base_remediation())
    (root / "_prelude").mkdir()
    (root / "_prelude" / "linux.sh").write_text("set -eu\n")
    problems, _ = catalog_problems(root)
    assert any(
        "free-disk-space" in p and "os.linux.script: linux.sh" in p and PRELUDE_MARKER in p for p in problems
    )


def test_a_fix_to_the_prelude_lands_in_every_script_of_the_shipped_catalog(tmp_path: Path) -> None:
    root = tmp_path / "catalog"
    shutil.copytree(SHIPPED, root)
    for name, fix in (("linux.sh", "# prelude-fix-7f3a\n"), ("windows.ps1", "# prelude-fix-7f3a\n")):
        prelude = root / "_prelude" / name
        prelude.write_text(prelude.read_text() + fix)
    catalog = load_catalog(root)
    scripts = [(r.id, os) for r in catalog.remediations.values() for os in r.os_types]
    assert len(scripts) >= 10
    for remediation_id, os_type in scripts:
        text = catalog.get(remediation_id).script(os_type)
        assert text.count("prelude-fix-7f3a") == 1, (remediation_id, os_type)
        assert PRELUDE_MARKER not in text.splitlines()


def test_shipped_scripts_carry_no_copy_of_the_prelude() -> None:
    for script in SHIPPED.glob("*/linux.sh"):
        if script.parent.name == "_prelude":
            continue
        text = script.read_text()
        assert "trap on_exit EXIT" not in text and "\nemit() {" not in text, script
    for script in SHIPPED.glob("*/windows.ps1"):
        if script.parent.name == "_prelude":
            continue
        assert "function Write-Result" not in script.read_text(), script
