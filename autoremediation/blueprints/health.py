"""GET /api/health: anonymous liveness, with the catalog's state and how operators are authenticated
(no secrets, no Azure call)."""

from __future__ import annotations

import json

import azure.functions as func

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    from ..errors import RemediationError
    from .runtime import services

    try:
        engine = services()
        catalog = engine.catalog
    except RemediationError as error:
        # A bad setting or an invalid catalog: the app is up but cannot remediate anything.
        failure = {"status": "unhealthy", "reason": str(error)}
        return func.HttpResponse(json.dumps(failure), status_code=503, mimetype="application/json")
    settings = engine.settings
    body: dict[str, object] = {"status": "ok", "remediations": sorted(catalog.remediations)}
    if settings.platform_auth:
        body["operatorAuthentication"] = "app-service"
    elif settings.allow_unauthenticated_operators:
        body["operatorAuthentication"] = "development-unauthenticated"
        body["warning"] = (
            "REMEDIATION_ALLOW_UNAUTHENTICATED_OPERATORS is on and App Service authentication is off: "
            "anyone who reaches the operator API can request and approve remediations"
        )
    else:
        body["operatorAuthentication"] = "off"
    return func.HttpResponse(json.dumps(body), status_code=200, mimetype="application/json")
