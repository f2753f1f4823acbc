"""The workbook infra/ deploys: wired from main.bicep, and every field its KQL reads is one the app emits.

The emitted fields come from the code (``telemetry.EVENT_FIELDS``, which ``transition_event`` is tested
against), the states from ``jobs.STATES``, guard names from ``telemetry.GUARDS``. The README snippets are
held to the same rule, so no documented query reads a dimension that never arrives.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from autoremediation import jobs, telemetry

from . import bicep

WORKBOOK_JSON = bicep.INFRA / "workbook" / "remediation.workbook.json"
WORKBOOK_BICEP = bicep.INFRA / "modules" / "workbook.bicep"
READMES = (bicep.REPO_ROOT / "README.md", bicep.INFRA / "README.md")
DIMENSION = re.compile(r"customDimensions(?:\.([A-Za-z_]\w*)|\[\s*[\"']([^\"']+)[\"']\s*\])")
LITERAL = re.compile(r'"([^"]*)"')
# Literals a query may use that are neither a state, a guard nor the event name.
OTHER_LITERALS = {": ", "remediate approve "}


def _workbook() -> dict:
    return json.loads(WORKBOOK_JSON.read_text(encoding="utf-8"))


def _workbook_queries() -> dict[str, str]:
    return {item["name"]: item["content"]["query"] for item in _workbook()["items"] if item["type"] == 3}


def _readme_queries() -> list[tuple[str, str]]:
    found = []
    for path in READMES:
        text = path.read_text(encoding="utf-8")
        found += [(path.name, q) for q in re.findall(r"```kusto\n(.*?)```", text, re.S)]
    return found


def _all_queries() -> list[tuple[str, str]]:
    return [*_workbook_queries().items(), *_readme_queries()]


def test_the_workbook_has_each_view_the_operators_need() -> None:
    queries = _workbook_queries()
    assert set(queries) == {"outcomes", "failures", "approvals", "vms", "breakers", "campaigns"}
    workbook = _workbook()
    assert workbook["version"] == "Notebook/1.0"
    assert workbook["fallbackResourceIds"] == ["__APP_INSIGHTS_ID__"]
    for item in workbook["items"]:
        if item["type"] == 3:
            assert item["content"]["resourceType"] == "microsoft.insights/components"
            assert item["content"]["title"]


def test_readmes_carry_kql() -> None:
    names = [name for name, _ in _readme_queries()]
    assert "README.md" in names and names.count("README.md") >= 1 and len(names) >= 3


@pytest.mark.parametrize(("where", "query"), _all_queries(), ids=lambda v: v if len(v) < 40 else "")
def test_every_dimension_a_query_reads_is_emitted(where: str, query: str) -> None:
    read = {a or b for a, b in DIMENSION.findall(query)}
    assert read, f"{where}: reads no customDimensions"
    assert read <= set(telemetry.EVENT_FIELDS), (
        f"{where} reads fields the app never emits: {read - set(telemetry.EVENT_FIELDS)}"
    )


@pytest.mark.parametrize(("where", "query"), _all_queries(), ids=lambda v: v if len(v) < 40 else "")
def test_every_literal_is_a_state_guard_or_the_event_name(where: str, query: str) -> None:
    assert f'name == "{telemetry.EVENT_NAME}"' in query and "customEvents" in query
    known = set(jobs.STATES) | set(telemetry.GUARDS) | {telemetry.EVENT_NAME} | OTHER_LITERALS
    literals = LITERAL.findall(DIMENSION.sub("", query))  # a dimension's own name is checked above
    unknown = {lit for lit in literals if lit not in known and not lit.startswith("job-")}
    assert unknown == set(), f"{where}: literals that match nothing the app emits: {unknown}"


def test_the_checker_catches_an_unknown_dimension() -> None:
    """The field rule itself can fail: a misspelt dimension is found."""
    query = 'customEvents | where name == "RemediationTransition" | project tostring(customDimensions.vmname)'
    assert {a or b for a, b in DIMENSION.findall(query)} - set(telemetry.EVENT_FIELDS) == {"vmname"}


def test_main_bicep_deploys_the_workbook_from_the_json_in_the_repo() -> None:
    main = (bicep.INFRA / "main.bicep").read_text(encoding="utf-8")
    assert re.search(r"module workbook 'modules/workbook\.bicep'", main)
    assert "appInsightsId: monitoring.outputs.appInsightsId" in main
    module = WORKBOOK_BICEP.read_text(encoding="utf-8")
    assert "resource workbook 'Microsoft.Insights/workbooks@" in module
    [loaded] = re.findall(r"loadTextContent\('([^']+)'\)", module)
    assert (WORKBOOK_BICEP.parent / loaded).resolve() == WORKBOOK_JSON.resolve()
    assert "'__APP_INSIGHTS_ID__', appInsightsId" in module and "kind: 'shared'" in module
    assert (
        "output appInsightsId string = appInsights.id"
        in (bicep.INFRA / "modules" / "monitoring.bicep").read_text()
    )


def test_the_notify_urls_are_a_secure_parameter() -> None:
    for path in (bicep.INFRA / "main.bicep", bicep.INFRA / "modules" / "functionapp.bicep"):
        text = path.read_text(encoding="utf-8")
        assert re.search(r"@secure\(\)\s*\n(@description\([^\n]*\)\s*\n)?param notifyUrls string", text), path
        assert not re.search(r"^output .*notify", text, re.M | re.I), path


def test_workbook_json_is_what_bicep_loads(tmp_path: Path) -> None:
    """Bicep's loadTextContent caps a file at 131072 characters."""
    assert len(WORKBOOK_JSON.read_text(encoding="utf-8")) < 131072
