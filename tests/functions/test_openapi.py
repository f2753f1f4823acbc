"""The OpenAPI document and the registered functions agree, and real answers match the documented schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from autoremediation.services import set_services
from tests.functions.conftest import (
    READER,
    REPO,
    Engine,
    call,
    http,
    json_of,
    make_engine,
    principal,
    registered,
    sample,
)

DOCUMENT = REPO / "autoremediation" / "openapi.yaml"
METHODS = ("get", "post", "put", "patch", "delete")


def document() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DOCUMENT.read_text())
    return data


def operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    """operationId -> (path, method, operation)."""
    found = {}
    for path, item in document()["paths"].items():
        for method in METHODS:
            if method in item:
                found[item[method]["operationId"]] = (path, method, item[method])
    return found


def http_functions() -> dict[str, tuple[str, str, str]]:
    """function name -> (path, method, auth level), from the bindings the host reads.

    The console's pages (``console_*``) are HTML for a browser, not part of the JSON API this
    document describes; tests/console covers them."""
    found = {}
    for name, function in registered().items():
        if name.startswith("console_"):
            continue
        trigger = json.loads(function.get_function_json())["bindings"][0]
        if trigger["type"] != "httpTrigger":
            continue
        [method] = trigger["methods"]
        found[name] = ("/" + trigger["route"], method.lower(), trigger["authLevel"])
    return found


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document()
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def validator_for(schema: dict[str, Any]) -> Draft202012Validator:
    root = {**schema, "components": document()["components"]}
    return Draft202012Validator(root)


def test_the_document_is_openapi_3_1_with_valid_schemas() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_every_documented_operation_is_a_registered_function_and_vice_versa() -> None:
    documented = {op_id: (path, method) for op_id, (path, method, _) in operations().items()}
    registered_routes = {name: (path, method) for name, (path, method, _) in http_functions().items()}

    assert documented == registered_routes


def test_security_and_response_codes_are_documented() -> None:
    functions = http_functions()
    for op_id, (path, _method, operation) in operations().items():
        codes = set(operation["responses"])
        anonymous = functions[op_id][2] == "ANONYMOUS"
        assert (operation.get("security") == []) == anonymous, op_id
        assert any(code.startswith("2") for code in codes), op_id
        if not anonymous:
            assert "500" in codes, op_id
        if op_id not in ("alerts", "health"):
            assert {"401", "403"} <= codes, op_id
        if "{id}" in path:
            assert "404" in codes, op_id
        if operation.get("requestBody"):
            assert {"400", "413"} <= codes, op_id
        if op_id not in ("health", "catalog"):
            # Everything that touches storage can meet an outage (503) or a refusal (502).
            assert {"502", "503"} <= codes, op_id


def answers(engine: Engine) -> list[tuple[str, Any]]:
    """Real answers of every operation, in the situations the document describes."""
    got: list[tuple[str, Any]] = []

    def run(name: str, *args: Any) -> Any:
        response = call(name, *args)
        got.append((name, response))
        return response

    def by_id(route: str, job_id: str, **kw: Any) -> Any:
        return http(kw.pop("method", "GET"), route, kw.pop("body", None), route_params={"id": job_id}, **kw)

    run("health", http("GET", "health"))
    run("alerts", http("POST", "alerts", sample("disk-full-alert.json")))
    run("alerts", http("POST", "alerts", b"{"))
    run("alerts", http("POST", "alerts", b"x" * (1024 * 1024 + 1)))
    manual = {**sample("manual-request.json"), "remediation": "restore-management-access", "parameters": {}}
    created = run("remediations_create", http("POST", "remediations", manual))
    run("remediations_create", http("POST", "remediations", {"remediation": 1}))
    run("remediations_create", http("POST", "remediations", manual, headers={"X-MS-CLIENT-PRINCIPAL": "!"}))
    job_id = json_of(created)["jobIds"][0]
    run("remediations_approve", by_id("approve", job_id, method="POST"))  # 409: not awaiting approval yet
    engine.queued()
    engine.deliver(job_id)
    run("remediations_get", by_id("remediations", job_id))
    run("remediations_get", by_id("remediations", "job-000000000000000000000000"))
    run("remediations_list", http("GET", "remediations", params={"status": "awaiting-approval"}))
    run("remediations_list", http("GET", "remediations", params={"limit": "-1"}))
    reader = {"X-MS-CLIENT-PRINCIPAL": principal(READER)}
    run("remediations_approve", by_id("approve", job_id, method="POST", headers=reader))
    run("remediations_approve", by_id("approve", job_id, method="POST", body={"reason": "ok"}))
    run("remediations_reject", by_id("reject", job_id, method="POST"))
    run("remediations_reject", by_id("reject", "job-000000000000000000000000", method="POST"))
    run("catalog", http("GET", "catalog"))
    campaign = {
        "id": "c-1",
        "remediation": "free-disk-space",
        "targets": {"vmIds": [job_target(engine, job_id)]},
        "maxConcurrency": 1,
        "maxErrors": 0,
    }
    run("campaigns_create", http("POST", "campaigns", campaign))
    run("campaigns_get", by_id("campaigns", "c-1"))
    return got


def job_target(engine: Engine, job_id: str) -> str:
    return engine.store.get(job_id).target


def test_real_answers_match_the_documented_responses(engine: Engine) -> None:
    ops = operations()
    seen: set[tuple[str, str]] = set()
    for name, response in answers(engine):
        _path, _method, operation = ops[name]
        code = str(response.status_code)
        assert code in operation["responses"], (name, code, response.get_body()[:200])
        documented = resolve(operation["responses"][code])
        schema = documented["content"]["application/json"]["schema"]
        body = json.loads(response.get_body())
        errors = sorted(validator_for(schema).iter_errors(body), key=str)
        assert not errors, (name, code, [e.message for e in errors[:3]])
        for header in documented.get("headers", {}):
            assert header in response.headers, (name, code, header)
        seen.add((name, code))
    assert {("alerts", "202"), ("alerts", "400"), ("alerts", "413"), ("remediations_approve", "409")} <= seen
    assert {
        ("remediations_approve", "403"),
        ("remediations_create", "401"),
        ("remediations_get", "404"),
    } <= seen


def test_a_storage_outage_answer_matches_the_document(tmp_path: Path) -> None:
    from autoremediation.errors import Transient
    from autoremediation.store.sqlite import SqliteJobStore

    class Down(SqliteJobStore):
        def list(self, **filters: Any) -> list[Any]:
            raise Transient("table storage list: cannot reach the storage account")

    made = make_engine(tmp_path, store=Down(str(tmp_path / "down.db")))
    set_services(made.services)

    response = call("remediations_list", http("GET", "remediations"))

    operation = operations()["remediations_list"][2]
    assert response.status_code == 503
    documented = resolve(operation["responses"]["503"])
    assert "Retry-After" in documented["headers"] and "Retry-After" in response.headers
    assert not list(
        validator_for(documented["content"]["application/json"]["schema"]).iter_errors(json_of(response))
    )


@pytest.mark.parametrize(
    ("name", "example"), [("remediations_create", "manual-request.json"), ("alerts", "disk-full-alert.json")]
)
def test_the_samples_match_the_documented_request_bodies(name: str, example: str) -> None:
    schema = operations()[name][2]["requestBody"]["content"]["application/json"]["schema"]

    assert not list(validator_for(schema).iter_errors(sample(example)))
    assert list(validator_for(schema).iter_errors({"script": "rm -rf /"}))
