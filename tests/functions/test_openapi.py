"""The OpenAPI document and the registered functions agree, and real answers match the documented schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from autoremediation.services import set_services
from tests.functions.conftest import (
    OMAR,
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


PUBLIC = {"health", "openapi"}
KEYED = {"alerts"}


def test_security_and_response_codes_are_documented() -> None:
    """Health and the document are public, the webhook takes a function key, the rest an Entra token."""
    functions = http_functions()
    default = document()["security"]
    assert default == [{"entra": []}]
    for op_id, (path, _method, operation) in operations().items():
        codes = set(operation["responses"])
        security = operation.get("security", default)
        level = functions[op_id][2]
        if op_id in PUBLIC:
            assert (security, level) == ([], "ANONYMOUS"), op_id
        elif op_id in KEYED:
            assert level == "FUNCTION" and {k for s in security for k in s} == {
                "functionKeyHeader",
                "functionKeyQuery",
            }
        else:
            # The host asks no key: App Service authentication in front demands the token (infra excludes
            # only the public and keyed paths), and the app demands its principal and roles.
            assert (security, level) == ([{"entra": []}], "ANONYMOUS"), op_id
        assert any(code.startswith("2") for code in codes), op_id
        if op_id not in PUBLIC:
            assert "500" in codes, op_id
        if op_id not in PUBLIC | KEYED:
            assert {"401", "403"} <= codes, op_id
        if "{id}" in path:
            assert "404" in codes, op_id
        if operation.get("requestBody"):
            assert {"400", "413"} <= codes, op_id
        if op_id not in ("health", "catalog", "openapi"):
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
    run("openapi", http("GET", "openapi"))
    run("alerts", http("POST", "alerts", sample("disk-full-alert.json")))
    run("alerts", http("POST", "alerts", b"{"))
    run("alerts", http("POST", "alerts", b"x" * (1024 * 1024 + 1)))
    manual = {**sample("manual-request.json"), "remediation": "restore-management-access", "parameters": {}}
    created = run("remediations_create", http("POST", "remediations", manual))
    run("remediations_create", http("POST", "remediations", {"remediation": 1}))
    run("remediations_create", http("POST", "remediations", manual, headers={"X-MS-CLIENT-PRINCIPAL": "!"}))
    run("remediations_create", http("POST", "remediations", manual, headers={}))  # 401: nobody signed in
    job_id = json_of(created)["jobIds"][0]
    ok = {"reason": "CHG-1"}
    # 409: not awaiting approval yet
    run("remediations_approve", by_id("approve", job_id, method="POST", body=ok, headers=OMAR))
    engine.queued()
    engine.deliver(job_id)
    run("remediations_get", by_id("remediations", job_id))
    run("remediations_get", by_id("remediations", "job-000000000000000000000000"))
    run("remediations_list", http("GET", "remediations", params={"status": "awaiting-approval"}))
    run("remediations_list", http("GET", "remediations", params={"limit": "-1"}))
    reader = {"X-MS-CLIENT-PRINCIPAL": principal(READER)}
    run("remediations_approve", by_id("approve", job_id, method="POST", body=ok, headers=reader))
    run("remediations_approve", by_id("approve", job_id, method="POST", body={}, headers=OMAR))  # 400
    run("remediations_approve", by_id("approve", job_id, method="POST", body=ok))  # 409: the requester
    run("remediations_approve", by_id("approve", job_id, method="POST", body=ok, headers=OMAR))
    run("remediations_get", by_id("remediations", job_id))  # with its review
    run("remediations_reject", by_id("reject", job_id, method="POST", body=ok, headers=OMAR))
    run("remediations_reject", by_id("reject", "job-000000000000000000000000", method="POST", body=ok))
    run("catalog", http("GET", "catalog"))
    run("plan", http("POST", "plan", sample("disk-full-alert.json")))
    run("plan", http("POST", "plan", {"schemaId": "nope"}))
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
        ("remediations_approve", "200"),
        ("remediations_approve", "400"),
        ("remediations_approve", "403"),
        ("remediations_create", "401"),
        ("remediations_get", "404"),
        ("openapi", "200"),
    } <= seen


def test_the_served_document_is_the_one_in_the_package_with_the_scope(tmp_path: Path) -> None:
    from autoremediation.settings import Settings

    made = make_engine(
        tmp_path, Settings(sqlite_path=str(tmp_path / "o.db"), app_scope="api://t/app/.default")
    )
    set_services(made.services)

    served = json_of(call("openapi", http("GET", "openapi", headers={})))

    expected = document()
    expected["info"]["x-entra-scope"] = "api://t/app/.default"
    assert served == expected


def test_every_job_field_is_documented(engine: Engine) -> None:
    """A field the API returns but the document leaves out is a field clients cannot rely on."""
    from autoremediation.jobs import Job, _camel

    documented = set(resolve({"$ref": "#/components/schemas/Job"})["properties"])
    assert {_camel(name) for name in Job.__dataclass_fields__} | {"outcomeKind"} == documented
