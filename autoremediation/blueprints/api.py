"""The operator API: request, read, approve and reject remediations, and read the catalog.

Who may call is decided by App Service authentication and the caller's app roles (see ``auth``), not by
a function key: a key is a shared secret that names nobody, so the host lets these routes through
(auth level ANONYMOUS) and the platform front end, which requires an Entra token for them, is the
authenticator. Requests name a catalog remediation and parameters the catalog validates; no request can
carry script text. The contract is ``autoremediation/openapi.yaml``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import azure.functions as func

from ..errors import InvalidInput
from ..jobs import outcome_kind
from .admission import AppFault, admit, app_work, engine, plan, result_body
from .auth import Caller, Need, authorize
from .responses import json_response, read_json, response_for

if TYPE_CHECKING:
    from ..jobs import Job

bp = func.Blueprint()
log = logging.getLogger("autoremediation.functions.api")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_REASON_CHARS = 1024
# One request, one answer within the HTTP limit: a fleet-wide change is a campaign, with its waves.
MAX_REQUEST_TARGETS = 50
# ``code`` is the function key when it is passed in the query string: never a filter.
LIST_PARAMETERS = ("target", "status", "remediation", "since", "limit", "code")
_REMEDIATION_ID = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def _caller(req: func.HttpRequest, need: Need) -> Caller:
    return authorize(req.headers, need, engine().settings)


def _handle(
    req: func.HttpRequest, need: Need, action: Callable[[Caller], func.HttpResponse]
) -> func.HttpResponse:
    """Authorise, then run ``action(caller)``; every error becomes its documented answer."""
    try:
        return action(_caller(req, need))
    except AppFault as fault:
        return response_for(fault.error, caller_fault=False)
    except Exception as error:
        return response_for(error)


def job_summary(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "status": job.status,
        "outcomeKind": outcome_kind(job),
        "remediation": job.remediation,
        "condition": job.condition,
        "target": job.target,
        "createdAt": job.created_at,
        "updatedAt": job.updated_at,
        "requestedBy": job.requested_by,
        "requestedByName": job.requested_by_name or job.requested_by,
        "dryRun": job.dry_run,
        "exitCode": job.outcome.get("exitCode"),
        "verification": job.outcome.get("verification"),
        "lastStep": job.history[-1].reason if job.history else "",
    }


def shown_job(job: Job) -> dict[str, Any]:
    """The job as the API shows it: parameters the catalog declares secret read ``(secret)``.

    The stored job keeps the value, since the worker passes it to the run command at dispatch.
    """
    data = job.to_json()  # camelCase, as openapi.yaml declares and the CLI prints
    data["parameters"] = engine("catalog").catalog.redacted(job.remediation, job.parameters)
    return data


def _shown_result(body: dict[str, Any]) -> dict[str, Any]:
    """The intake answer with each plan's parameters redacted like a job's."""
    catalog = engine("catalog").catalog
    plans = []
    for item in body.get("plans") or []:
        if isinstance(item, Mapping) and isinstance(item.get("parameters"), Mapping):
            remediation = str(item.get("remediation") or "")
            item = {**item, "parameters": catalog.redacted(remediation, item["parameters"])}
        plans.append(item)
    return {**body, "plans": plans} if "plans" in body else body


def _job_id(req: func.HttpRequest) -> str:
    from ..store.records import is_valid_id

    job_id = req.route_params.get("id", "")
    if not is_valid_id(job_id):
        raise InvalidInput(f"{job_id[:80]!r} is not a job id")
    return job_id


def _reason(req: func.HttpRequest, verb: str) -> str:
    """The ``{"reason": ...}`` body of approve and reject: a decision on record says why."""
    if not (req.get_body() or b"").strip():
        raise InvalidInput(f'say why you {verb} it: send {{"reason": "..."}}')
    body = read_json(req)
    if not isinstance(body, Mapping):
        raise InvalidInput('the body must be a JSON object like {"reason": "..."}')
    unknown = sorted(str(k) for k in body if k != "reason")
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r} (only reason is accepted)")
    reason = body.get("reason", "")
    if not isinstance(reason, str):
        raise InvalidInput("reason must be a string")
    reason = reason.strip()
    if not reason:
        raise InvalidInput(f"reason is empty: say why you {verb} it")
    if len(reason) > MAX_REASON_CHARS or not reason.isprintable():
        raise InvalidInput(f"reason must be printable text of at most {MAX_REASON_CHARS} characters")
    return reason


# -- requests --------------------------------------------------------------------------------------


@bp.function_name("remediations_create")
@bp.route(route="remediations", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def remediations_create(req: func.HttpRequest) -> func.HttpResponse:
    def act(caller: Caller) -> func.HttpResponse:
        from ..signals.manual import parse_manual

        payload = read_json(req)
        if not isinstance(payload, Mapping):
            raise InvalidInput("a remediation request must be a JSON object")
        # The requester on record is the authenticated caller, never what the body claims.
        signal = parse_manual({**payload, "requestedBy": caller.object_id, "requestedByName": caller.name})
        if len(signal.targets) > MAX_REQUEST_TARGETS:
            raise InvalidInput(
                f"the request names {len(signal.targets)} VMs; at most {MAX_REQUEST_TARGETS} "
                "(start a campaign for more)"
            )
        report = plan([signal], strict_parameters=True)
        result = admit(report, actor=caller.object_id)
        body = _shown_result(result_body(result))
        headers = {"Location": f"/api/remediations/{body['jobIds'][0]}"} if body["jobIds"] else {}
        log.info("manual request %s by %s: jobs %s", signal.id, caller.object_id, body["jobIds"])
        return json_response(202, body, headers)

    return _handle(req, "operate", act)


@bp.function_name("remediations_get")
@bp.route(route="remediations/{id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def remediations_get(req: func.HttpRequest) -> func.HttpResponse:
    def act(caller: Caller) -> func.HttpResponse:
        from ..errors import NotFound

        try:
            job_id = _job_id(req)
        except InvalidInput as error:
            raise NotFound(str(error)) from None
        with app_work():
            job = engine("store").store.get(job_id)
        return json_response(200, shown_job(job))

    return _handle(req, "read", act)


def list_filters(params: Mapping[str, str]) -> dict[str, Any]:
    """The query string of ``GET remediations`` as store filters; InvalidInput names a bad one."""
    from .. import jobs
    from ..resources import is_arm_id

    unknown = sorted(k for k in params if k not in LIST_PARAMETERS)
    if unknown:
        raise InvalidInput(f"unknown filter {unknown[0]!r} (use target, status, remediation, since, limit)")
    filters: dict[str, Any] = {"limit": DEFAULT_LIMIT}
    target = params.get("target")
    if target is not None:
        if len(target) > 1024 or not is_arm_id(target):
            raise InvalidInput(f"target {target[:80]!r} is not an Azure resource id")
        filters["target"] = target.strip()
    status = params.get("status")
    if status is not None:
        statuses = [s.strip() for s in status.split(",") if s.strip()]
        bad = [s for s in statuses if s not in jobs.STATES]
        if not statuses or bad:
            shown = bad[0][:40] if bad else status[:40]
            raise InvalidInput(f"status {shown!r} is not one of {', '.join(jobs.STATES)}")
        filters["status"] = statuses
    remediation = params.get("remediation")
    if remediation is not None:
        if len(remediation) > 48 or not _REMEDIATION_ID.match(remediation):
            raise InvalidInput(f"remediation {remediation[:60]!r} is not a remediation id")
        filters["remediation"] = remediation
    since = params.get("since")
    if since is not None:
        try:
            moment = datetime.fromisoformat(since.strip())
        except ValueError:
            raise InvalidInput(f"since {since[:60]!r} is not an ISO 8601 date and time") from None
        if moment.tzinfo is None:
            raise InvalidInput(f"since {since[:60]!r} needs a time zone (like 2026-01-31T00:00:00Z)")
        filters["since"] = moment
    limit = params.get("limit")
    if limit is not None:
        if not limit.strip().isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
            raise InvalidInput(f"limit {limit[:20]!r} must be a whole number from 1 to {MAX_LIMIT}")
        filters["limit"] = int(limit)
    return filters


@bp.function_name("remediations_list")
@bp.route(route="remediations", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def remediations_list(req: func.HttpRequest) -> func.HttpResponse:
    def act(caller: Caller) -> func.HttpResponse:
        filters = list_filters(req.params)
        with app_work():
            found = engine("store").store.list(**filters)
        return json_response(200, {"jobs": [job_summary(j) for j in found], "count": len(found)})

    return _handle(req, "read", act)


# -- approvals -------------------------------------------------------------------------------------


@bp.function_name("remediations_approve")
@bp.route(route="remediations/{id}/approve", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def remediations_approve(req: func.HttpRequest) -> func.HttpResponse:
    def act(caller: Caller) -> func.HttpResponse:
        from ..errors import NotFound
        from ..operations import approve

        reason = _reason(req, "approve")
        try:
            job_id = _job_id(req)
        except InvalidInput as error:
            raise NotFound(str(error)) from None
        with app_work():
            parts = engine("store", "queue")
            job = approve(
                parts.store,
                parts.queue,
                parts.clock,
                job_id,
                actor=caller.object_id,
                actor_name=caller.name,
                reason=reason,
            )
        log.info("job %s approved by %s", job.id, caller.object_id)
        return json_response(200, shown_job(job))

    return _handle(req, "operate", act)


@bp.function_name("remediations_reject")
@bp.route(route="remediations/{id}/reject", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def remediations_reject(req: func.HttpRequest) -> func.HttpResponse:
    def act(caller: Caller) -> func.HttpResponse:
        from ..errors import NotFound
        from ..operations import reject

        reason = _reason(req, "reject")
        try:
            job_id = _job_id(req)
        except InvalidInput as error:
            raise NotFound(str(error)) from None
        with app_work():
            parts = engine("store", "queue")
            job = reject(
                parts.store,
                parts.clock,
                job_id,
                actor=caller.object_id,
                actor_name=caller.name,
                reason=reason,
            )
            if job.campaign_id:
                from ..campaign_chain import on_operator_end

                on_operator_end(parts, job)  # its campaign's next job takes the freed slot now
        log.info("job %s rejected by %s", job.id, caller.object_id)
        return json_response(200, shown_job(job))

    return _handle(req, "operate", act)


# -- planning --------------------------------------------------------------------------------------


@bp.function_name("plan")
@bp.route(route="plan", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def plan_payload(req: func.HttpRequest) -> func.HttpResponse:
    """What an alert, event or request would do: routed and decided, nothing written, nothing run."""

    def act(caller: Caller) -> func.HttpResponse:
        from ..preview import with_runtime_guards
        from ..runner import guard_settings

        payload = read_json(req)
        services = engine("planner", "compute", "store")
        report = services.planner.plan_payload(payload)
        # Plan like run: the runtime guards on fresh VM facts and the job history, as the worker will.
        report = with_runtime_guards(
            report,
            services.catalog,
            services.compute,
            services.store,
            guard_settings(services.settings),
            services.clock.now(),
        )
        return json_response(200, _shown_result(report.to_dict()))

    return _handle(req, "read", act)


# -- catalog ---------------------------------------------------------------------------------------


@bp.function_name("catalog")
@bp.route(route="catalog", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def catalog(req: func.HttpRequest) -> func.HttpResponse:
    def act(caller: Caller) -> func.HttpResponse:
        remediations = engine("catalog").catalog.remediations
        entries = [remediations[k].summary() for k in sorted(remediations)]
        return json_response(200, {"remediations": entries})

    return _handle(req, "read", act)
