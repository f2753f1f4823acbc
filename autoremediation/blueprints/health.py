"""GET /api/health: anonymous liveness, with the catalog's state (no secrets, no Azure call)."""

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
        catalog = services().catalog
    except RemediationError as error:
        # A bad setting or an invalid catalog: the app is up but cannot remediate anything.
        failure = {"status": "unhealthy", "reason": str(error)}
        return func.HttpResponse(json.dumps(failure), status_code=503, mimetype="application/json")
    body = {"status": "ok", "remediations": sorted(catalog.remediations)}
    return func.HttpResponse(json.dumps(body), status_code=200, mimetype="application/json")
