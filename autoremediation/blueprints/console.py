"""The operator console's routes: pages under ``/api/console``, served by the Function App itself.

Anonymous at the Functions level on purpose: a browser cannot carry a function key without putting it
in a URL. What protects the console is App Service authentication, which signs the operator in and
vouches for the ``X-MS-CLIENT-PRINCIPAL`` headers; without it (``WEBSITE_AUTH_ENABLED`` not set) the
console shows nothing. Reading needs the Reader or Operator app role, deciding needs Operator; every POST
passes the cross-site request check of ``console.security``. Pages follow post/redirect/get, so a reload
never repeats a decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

import azure.functions as func

from ..errors import ConcurrencyConflict, InvalidInput, InvalidTransition, NotFound, RemediationError
from .admission import AppFault, engine
from .auth import Caller, Need, authorize
from .responses import Forbidden, Unauthenticated

if TYPE_CHECKING:
    from ..services import Services

bp = func.Blueprint()
log = logging.getLogger("autoremediation.functions.console")

ROOT = "/api/console"
MAX_FORM_BYTES = 8 * 1024
MAX_REASON_CHARS = 1024
# What a redirect after a decision may say: the query string names one of these, never free text.
DONE = {
    "approved": ("ok", "Approved. The worker checks every guard again before it runs the remediation."),
    "rejected": ("ok", "Rejected. The job is cancelled."),
    "stopped": ("ok", "Stop requested: no new VM starts; the ones running finish."),
}


class ConsoleOff(Forbidden):
    """The console needs App Service authentication in front of the app (403)."""


def _html(status: int, body: str, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    from ..console.security import SECURITY_HEADERS

    return func.HttpResponse(
        body,
        status_code=status,
        mimetype="text/html",
        charset="utf-8",
        headers={**SECURITY_HEADERS, **(headers or {})},
    )


def _message(status: int, heading: str, text: str, back: str = "") -> func.HttpResponse:
    from ..console.pages import render

    return _html(status, render("message.html", root=ROOT, heading=heading, text=text, back=back))


def _redirect(location: str) -> func.HttpResponse:
    from ..console.security import SECURITY_HEADERS

    return func.HttpResponse(status_code=303, headers={**SECURITY_HEADERS, "Location": location})


def _caller(req: func.HttpRequest, need: Need) -> Caller:
    settings = engine().settings
    if not settings.platform_auth:
        raise ConsoleOff(
            "the console needs App Service authentication in front of the app "
            "(for a local look: remediate console)"
        )
    caller = authorize(req.headers, need, settings)
    if not caller.authenticated:
        raise Unauthenticated("sign in first: no identity came with the request")
    return caller


def _page(
    req: func.HttpRequest, need: Need, act: Callable[[Services, Caller, dict[str, Any]], func.HttpResponse]
) -> func.HttpResponse:
    """Authorise, build the common page context, run ``act``; every error becomes a page that says why."""
    from ..console import security

    try:
        caller = _caller(req, need)
        services = engine("store", "catalog")
        token = security.token_from_cookie(req.url, req.headers)
        fresh = token is None
        token = token or security.new_token()
        settings = services.settings
        context: dict[str, Any] = {
            "root": ROOT,
            "me": {"name": caller.name, "id": caller.object_id},
            "can_operate": settings.operator_role in caller.roles,
            "csrf": token,
            "flash": None,
        }
        done = DONE.get(req.params.get("done", ""))
        if done:
            context["flash"] = {"kind": done[0], "text": done[1]}
        response = act(services, caller, context)
        if fresh and response.status_code < 300:
            response.headers["Set-Cookie"] = security.set_cookie_header(req.url, req.headers, token)
        return response
    except ConsoleOff as error:
        return _message(403, "Console unavailable", str(error))
    except Unauthenticated as error:
        return _message(401, "Sign in", str(error))
    except Forbidden as error:
        return _message(403, "Not allowed", str(error))
    except security.CrossSiteRequest as error:
        return _message(403, "Refused", str(error), back=ROOT)
    except NotFound as error:
        return _message(404, "Not found", str(error), back=ROOT)
    except InvalidInput as error:
        return _message(400, "Cannot do that", str(error), back=ROOT)
    except (InvalidTransition, ConcurrencyConflict) as error:
        return _message(409, "Cannot do that now", str(error), back=ROOT)
    except (AppFault, RemediationError) as error:
        log.warning("console: %s", error)
        return _message(503, "Try again", "the job store could not be reached; nothing was changed")
    except Exception:
        log.exception("console failed")
        return _message(500, "Something went wrong", "the error is in the app's log; nothing was changed")


def _form(req: func.HttpRequest) -> dict[str, str]:
    body = req.get_body() or b""
    if len(body) > MAX_FORM_BYTES:
        raise InvalidInput("the form is too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the form is not UTF-8") from None
    return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=8))


def _reason(form: Mapping[str, str], *, required: bool) -> str:
    reason = " ".join(form.get("reason", "").split())
    if len(reason) > MAX_REASON_CHARS or not reason.isprintable():
        raise InvalidInput(f"the reason must be printable text of at most {MAX_REASON_CHARS} characters")
    if required and not reason:
        raise InvalidInput("say why: a reason is required")
    return reason


def _job_id(req: func.HttpRequest) -> str:
    from ..store.records import is_valid_id

    job_id = req.route_params.get("id", "")
    if not is_valid_id(job_id):
        raise NotFound(f"no job {job_id[:80]!r}")
    return job_id


def _pending_count(services: Services) -> int:
    from ..console.views import pending_approvals

    return len(pending_approvals(services))


# -- pages -----------------------------------------------------------------------------------------


@bp.function_name("console_home")
@bp.route(route="console", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def console_home(req: func.HttpRequest) -> func.HttpResponse:
    def act(services: Services, caller: Caller, context: dict[str, Any]) -> func.HttpResponse:
        from ..console.pages import render
        from ..console.views import pending_approvals

        approvals = pending_approvals(services)
        page = render(
            "approvals.html", page="approvals", approvals=approvals, pending_count=len(approvals), **context
        )
        return _html(200, page)

    return _page(req, "read", act)


@bp.function_name("console_jobs")
@bp.route(route="console/jobs", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def console_jobs(req: func.HttpRequest) -> func.HttpResponse:
    def act(services: Services, caller: Caller, context: dict[str, Any]) -> func.HttpResponse:
        from .. import jobs
        from ..console.pages import render
        from ..console.views import LIST_LIMIT, JobFilters, job_list, parse_filters

        error = ""
        try:
            filters = parse_filters(req.params, services.clock.now())
        except InvalidInput as bad:
            error, filters = str(bad), JobFilters()
        page = render(
            "jobs.html",
            page="jobs",
            jobs=job_list(services, filters),
            filters={**filters.as_form(), "since": (req.params.get("since") or "")[:200]}
            if not error
            else JobFilters().as_form(),
            states=jobs.STATES,
            remediations=sorted(services.catalog.remediations),
            limit=LIST_LIMIT,
            error=error,
            pending_count=_pending_count(services),
            **context,
        )
        return _html(400 if error else 200, page)

    return _page(req, "read", act)


@bp.function_name("console_job")
@bp.route(route="console/jobs/{id}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def console_job(req: func.HttpRequest) -> func.HttpResponse:
    def act(services: Services, caller: Caller, context: dict[str, Any]) -> func.HttpResponse:
        from ..console.pages import render
        from ..console.views import job_detail

        job = job_detail(services, _job_id(req))
        page = render("job.html", page="jobs", job=job, pending_count=_pending_count(services), **context)
        return _html(200, page)

    return _page(req, "read", act)


@bp.function_name("console_decide")
@bp.route(route="console/jobs/{id}/{decision}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def console_decide(req: func.HttpRequest) -> func.HttpResponse:
    def act(services: Services, caller: Caller, context: dict[str, Any]) -> func.HttpResponse:
        from ..console.security import check_same_origin
        from ..operations import approve, reject

        decision = req.route_params.get("decision", "")
        if decision not in {"approve", "reject"}:
            raise NotFound(f"no action {decision[:40]!r} (approve or reject)")
        form = _form(req)
        check_same_origin(req.url, req.headers, form)
        job_id = _job_id(req)
        if decision == "approve":
            reason = _reason(form, required=False)
            approve(
                services.store,
                services.queue,
                services.clock,
                job_id,
                actor=caller.object_id,
                actor_name=caller.name,
                reason=reason,
            )
            log.info("console: job %s approved by %s", job_id, caller.object_id)
            return _redirect(f"{ROOT}/jobs/{job_id}?done=approved")
        reason = _reason(form, required=True)
        rejected = reject(
            services.store,
            services.clock,
            job_id,
            actor=caller.object_id,
            actor_name=caller.name,
            reason=reason,
        )
        if rejected.campaign_id:
            from ..campaign_chain import on_operator_end

            on_operator_end(services, rejected)  # its campaign's next job takes the freed slot now
        log.info("console: job %s rejected by %s", job_id, caller.object_id)
        return _redirect(f"{ROOT}/jobs/{job_id}?done=rejected")

    return _page(req, "operate", act)


@bp.function_name("console_campaigns")
@bp.route(route="console/campaigns", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def console_campaigns(req: func.HttpRequest) -> func.HttpResponse:
    def act(services: Services, caller: Caller, context: dict[str, Any]) -> func.HttpResponse:
        from ..console.pages import render
        from ..console.views import campaigns

        page = render(
            "campaigns.html",
            page="campaigns",
            campaigns=campaigns(services),
            pending_count=_pending_count(services),
            **context,
        )
        return _html(200, page)

    return _page(req, "read", act)


@bp.function_name("console_campaign_stop")
@bp.route(route="console/campaigns/{id}/stop", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def console_campaign_stop(req: func.HttpRequest) -> func.HttpResponse:
    def act(services: Services, caller: Caller, context: dict[str, Any]) -> func.HttpResponse:
        from ..campaigns import stop_campaign
        from ..console.security import check_same_origin

        form = _form(req)
        check_same_origin(req.url, req.headers, form)
        campaign_id = req.route_params.get("id", "")
        # The campaign record names the operator for people; the object id says which identity it was.
        actor = f"{caller.name} ({caller.object_id})" if caller.name != caller.object_id else caller.object_id
        stop_campaign(services, campaign_id, actor=actor, reason=_reason(form, required=True))
        return _redirect(f"{ROOT}/campaigns?done=stopped#{quote(campaign_id)}")

    return _page(req, "operate", act)


@bp.function_name("console_static")
@bp.route(route="console/static/{name}", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def console_static(req: func.HttpRequest) -> func.HttpResponse:
    from ..console.pages import static_file
    from ..console.security import SECURITY_HEADERS

    found = static_file(req.route_params.get("name", ""))
    if found is None:
        return func.HttpResponse("not found", status_code=404, headers=SECURITY_HEADERS)
    body, kind = found
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"}
    return func.HttpResponse(body, status_code=200, headers={**headers, "Content-Type": kind})
