"""GET /api/health: anonymous liveness, with the catalog's state (no secrets, no Azure call)."""

from __future__ import annotations

import json

import azure.functions as func

bp = func.Blueprint()


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def health(req: func.HttpRequest) -> func.HttpResponse:
    from ..catalog import load_catalog
    from ..errors import CatalogError
    from ..settings import Settings

    try:
        catalog = load_catalog(Settings.from_env().catalog_dir)
    except CatalogError as error:
        body = {"status": "unhealthy", "reason": str(error)}
        return func.HttpResponse(json.dumps(body), status_code=503, mimetype="application/json")
    body = {"status": "ok", "remediations": sorted(catalog.remediations)}
    return func.HttpResponse(json.dumps(body), status_code=200, mimetype="application/json")
