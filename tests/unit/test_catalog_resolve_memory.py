"""A remediation remembers the parameter sets it resolved: the same answers, each caller its own dict."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoremediation import catalog as catalog_module
from autoremediation.catalog import ParameterError
from autoremediation.catalog_load import load_catalog
from tests.helpers.catalogs import make_catalog


@pytest.fixture
def disk(tmp_path: Path):
    return load_catalog(make_catalog(tmp_path)).get("free-disk-space")


def test_a_remembered_set_answers_as_a_fresh_one_and_each_caller_gets_its_own_dict(disk) -> None:
    first = disk.resolve_parameters({"mountPoint": "/var"}, "linux")
    first["mountPoint"] = "/changed-by-the-caller"
    again = disk.resolve_parameters({"mountPoint": "/var"}, "linux")
    assert again == disk._resolve({"mountPoint": "/var"}, "linux")
    assert again["mountPoint"] == "/var"
    assert again is not disk.resolve_parameters({"mountPoint": "/var"}, "linux")


def test_values_equal_in_python_but_not_in_json_are_not_taken_for_each_other(disk) -> None:
    parameter = next(n for n, p in disk.parameters.items() if p.type == "integer")
    assert disk.resolve_parameters({parameter: 10}, "linux")[parameter] == "10"
    with pytest.raises(ParameterError, match="is not an integer"):
        disk.resolve_parameters({parameter: 10.0}, "linux")  # 10.0 == 10 in Python: still refused
    assert disk.resolve_parameters({parameter: " 10 "}, "linux")[parameter] == "10"


def test_a_bad_set_is_refused_every_time_and_an_unhashable_value_still_gets_its_error(disk) -> None:
    for _ in range(2):
        with pytest.raises(ParameterError, match="is not a parameter"):
            disk.resolve_parameters({"nope": "x"}, "linux")
    with pytest.raises(ParameterError, match="must be a string, not list"):
        disk.resolve_parameters({"mountPoint": ["/var"]}, "linux")


def test_the_memory_is_bounded(disk, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog_module, "_RESOLVED_REMEMBERED", 3)
    for n in range(10):
        assert disk.resolve_parameters({"mountPoint": f"/m{n}"}, "linux")["mountPoint"] == f"/m{n}"
        assert len(disk._resolved) <= 3
